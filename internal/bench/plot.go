package bench

import (
	"fmt"
	"image/color"
	"io"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// colors of the contenders, the same in both panels.
var colors = map[string]color.Color{
	Raw:            color.RGBA{120, 120, 120, 255},
	HandWritten:    color.RGBA{214, 39, 40, 255},
	SingleIndex:    color.RGBA{255, 127, 14, 255},
	WriteThrough:   color.RGBA{31, 119, 180, 255},
	WriteBack:      color.RGBA{44, 160, 44, 255},
	WriteBackTyped: color.RGBA{148, 103, 189, 255},
	Cairn:          color.RGBA{31, 119, 180, 255},
}

// WritePlot draws, side by side, Saves/s and the latency of List's first
// page against the number of runs, as a PNG.
func (r *Report) WritePlot(w io.Writer) error {
	saves, err := r.newPlot(fmt.Sprintf("Saves/s of %s checkpoints (%d callers)", sizeName(1<<10), r.Config.Concurrency), "Saves/s")
	if err != nil {
		return err
	}
	lists, err := r.newPlot("List, newest 100 runs, new process", "latency (ms)")
	if err != nil {
		return err
	}
	for _, name := range Contenders {
		var pts plotter.XYs
		for _, n := range r.Config.Scales {
			l := r.list(name, n)
			if v := rate(l.BurstSaves, l.BurstElapsed); v > 0 {
				pts = append(pts, plotter.XY{X: float64(n), Y: v})
			}
		}
		if err := addLine(saves, name, colors[name], pts, false); err != nil {
			return err
		}
	}
	for _, name := range []string{Raw, HandWritten, SingleIndex, Cairn} {
		var pts, extra plotter.XYs
		for _, n := range r.Config.Scales {
			l := r.list(name, n)
			if l.FirstLat <= 0 {
				continue
			}
			pt := plotter.XY{X: float64(n), Y: float64(l.FirstLat) / 1e6}
			if l.Extrapolated {
				extra = append(extra, pt)
			} else {
				pts = append(pts, pt)
			}
		}
		label := name
		if name == Raw {
			label = "ListObjectsV2 of keys (the limit)"
		}
		if err := addLine(lists, label, colors[name], pts, false); err != nil {
			return err
		}
		if len(extra) > 0 {
			if len(pts) > 0 {
				extra = append(plotter.XYs{pts[len(pts)-1]}, extra...)
			}
			if err := addLine(lists, name+" (extrapolated)", colors[name], extra, true); err != nil {
				return err
			}
		}
	}

	// Room for the legends: below the Saves, above the Lists.
	saves.Legend.Top = false
	saves.Y.Min /= 8
	lists.Y.Max *= 30

	img := vgimg.New(13*vg.Inch, 5.5*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: 8 * vg.Millimeter, PadLeft: 4 * vg.Millimeter,
		PadRight: 4 * vg.Millimeter, PadTop: 4 * vg.Millimeter, PadBottom: 4 * vg.Millimeter}
	canvases := plot.Align([][]*plot.Plot{{saves, lists}}, tiles, dc)
	saves.Draw(canvases[0][0])
	lists.Draw(canvases[0][1])
	_, err = vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}

func (r *Report) newPlot(title, y string) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	if r.Config.Latency > 0 {
		p.Title.Text += fmt.Sprintf(", +%s per request", r.Config.Latency)
	}
	p.X.Label.Text = "runs stored"
	p.Y.Label.Text = y
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	return p, nil
}

func addLine(p *plot.Plot, name string, c color.Color, pts plotter.XYs, dashed bool) error {
	if len(pts) == 0 {
		return nil
	}
	line, points, err := plotter.NewLinePoints(pts)
	if err != nil {
		return err
	}
	line.Color, points.Color = c, c
	line.Width = vg.Points(1.5)
	if dashed {
		line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		points.Shape = draw.RingGlyph{}
	}
	p.Add(line, points)
	p.Legend.Add(name, line, points)
	return nil
}
