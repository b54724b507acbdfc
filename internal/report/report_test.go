package report

import "testing"

func TestShortFrame(t *testing.T) {
	for in, want := range map[string]string{
		"main.f (/a/b/c.go:12)":                   "main.f (c.go:12)",
		"pkg.(*T).m (c.go:1)":                     "pkg.(*T).m (c.go:1)",
		"github.com/x/y/z.(*T).m (/src/z/t.go:9)": "z.(*T).m (t.go:9)",
		"main.g":                                  "main.g",
		"":                                        "",
		"0x4a41da":                                "0x4a41da",
	} {
		if got := ShortFrame(in); got != want {
			t.Errorf("ShortFrame(%q) = %q, want %q", in, got, want)
		}
	}
}
