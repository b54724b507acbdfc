//go:build !go1.20 || go1.24

package main

import "fmt"

// syncMiss needs sync.Map's layout of Go 1.20 to 1.23; from Go 1.24 a
// sync.Map has no dirty map.
func syncMiss() { fmt.Println("syncmiss unsupported") }
