// Command minioimage makes sure the MinIO test image exists and prints its name. It builds the
// image when it is missing (a few minutes on a fresh machine; see miniofixture.EnsureImage), so
// CI and people can build it once before `go test` instead of inside the first test that needs it.
//
//	go run ./tools/minioimage
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/cairnstore/cairn/internal/miniofixture"
)

func main() {
	log.SetFlags(log.Ltime)
	log.SetPrefix("minioimage: ")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	image, err := miniofixture.EnsureImage(ctx, log.Printf)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(image)
}
