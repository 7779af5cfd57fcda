// Package obstest checks, with the OpenTelemetry SDK's test exporters,
// that Cairn's stores emit the spans and metrics their docs promise. It is
// a module of its own so that the library's module never requires the
// SDK: run its tests with
//
//	cd internal/obstest && go test -race ./...
package obstest
