// Package other holds a type with a generated codec that package gentest
// uses from another package.
package other

import "time"

//go:generate go run ../../../tools/cairngen -type Thing

// Thing is a struct of another package, referred to as other.Thing.
type Thing struct {
	Label string    `msgpack:"label,required"`
	When  time.Time `msgpack:"when,required"`
}
