//go:build go1.20

package main

import (
	"sync"
	"unsafe"
)

func syncSwap(m *sync.Map, k, v any)                { m.Swap(k, v) }
func syncCompareAndSwap(m *sync.Map, k, old, v any) { m.CompareAndSwap(k, old, v) }
func syncCompareAndDelete(m *sync.Map, k, old any)  { m.CompareAndDelete(k, old) }

// syncRead is sync.Map's read field from Go 1.20 to 1.23: an atomic.Pointer.
type syncRead = unsafe.Pointer
