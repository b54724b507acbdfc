//go:build go1.24

package main

import "fmt"

// syncMiss needs sync.Map's layout up to Go 1.23; from Go 1.24 a
// sync.Map has no dirty map.
func syncMiss() { fmt.Println("syncmiss unsupported") }
