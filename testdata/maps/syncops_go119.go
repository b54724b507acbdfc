//go:build !go1.20

package main

import (
	"sync"
	"unsafe"
)

// Go 1.19's sync.Map has no Swap and no CompareAnd* methods: a Store, a
// LoadOrStore and a Delete count as the same kind of operation on the key.
func syncSwap(m *sync.Map, k, v any)                { m.Store(k, v) }
func syncCompareAndSwap(m *sync.Map, k, old, v any) { m.LoadOrStore(k, v) }
func syncCompareAndDelete(m *sync.Map, k, old any)  { m.Delete(k) }

// syncRead is sync.Map's read field in Go 1.19: an atomic.Value.
type syncRead = [2]unsafe.Pointer
