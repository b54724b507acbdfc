//go:build !go1.20

package main

import (
	"fmt"
	"time"
)

// syncHot needs Swap and the CompareAnd* methods, from Go 1.20.
func syncHot() { fmt.Println("synchot unsupported") }

func syncLoop(time.Duration) { fmt.Println("syncloop unsupported") }
