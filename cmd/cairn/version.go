package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// versionInfo is what `cairn version` prints, from the build information
// the Go toolchain embeds in the binary (runtime/debug.ReadBuildInfo):
// with --json, this document.
type versionInfo struct {
	// Version is the module's version: a release tag such as v1.2.0 when
	// built with go install module@version, a pseudo-version, or
	// "(devel)" when built from a checkout.
	Version string `json:"version"`
	Module  string `json:"module"`
	// Revision, Time and Modified describe the checkout it was built
	// from (vcs.revision, vcs.time, vcs.modified), when the build
	// recorded them: "" and false otherwise.
	Revision string `json:"revision"`
	Time     string `json:"time"`
	Modified bool   `json:"modified"`
	Go       string `json:"go"`       // the toolchain that built it, such as go1.26.0
	Platform string `json:"platform"` // GOOS/GOARCH, such as linux/amd64
}

// readVersion returns the version information of this binary.
func readVersion() versionInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return versionInfo{Version: "unknown", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	}
	return versionOf(bi)
}

// versionOf returns the version information that bi records.
func versionOf(bi *debug.BuildInfo) versionInfo {
	v := versionInfo{Version: bi.Main.Version, Module: bi.Main.Path, Go: bi.GoVersion, Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// buildVersion is the one-line version, as cairn --version prints it.
func buildVersion() string {
	v := readVersion()
	line := "cairn " + v.Version
	if v.Revision != "" {
		line += " (" + short(v.Revision)
		if v.Modified {
			line += ", modified"
		}
		line += ")"
	}
	return line + " " + v.Go
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// printVersion writes v for a person, one field a line.
func printVersion(w io.Writer, v versionInfo) {
	fmt.Fprintf(w, "cairn %s\n", v.Version)
	fmt.Fprintf(w, "  module    %s\n", v.Module)
	if v.Revision != "" {
		modified := ""
		if v.Modified {
			modified = " (modified)"
		}
		fmt.Fprintf(w, "  revision  %s%s\n", v.Revision, modified)
	}
	if v.Time != "" {
		fmt.Fprintf(w, "  time      %s\n", v.Time)
	}
	fmt.Fprintf(w, "  go        %s\n", v.Go)
	fmt.Fprintf(w, "  platform  %s\n", v.Platform)
}

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version of cairn: module version, VCS revision and time, Go version",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			v := readVersion()
			if e.flags.json {
				return printJSON(e.stdout, v)
			}
			printVersion(e.stdout, v)
			return nil
		},
	}
}
