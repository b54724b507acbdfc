//go:build go1.23

package main

import "sync"

func init() {
	syncClear = func(m *sync.Map) { m.Clear() }
}
