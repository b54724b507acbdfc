package preflight

import "testing"

func TestParseKernel(t *testing.T) {
	for _, tc := range []struct {
		release string
		want    Kernel
		min515  bool // AtLeast(MinKernel)
	}{
		{"6.18.44-fc-v1252", Kernel{6, 18}, true},
		{"5.15.0-91-generic", Kernel{5, 15}, true},
		{"5.14.0-362.el9.x86_64", Kernel{5, 14}, false},
		{"4.19", Kernel{4, 19}, false},
		{"10.0-rc1", Kernel{10, 0}, true},
	} {
		got, err := ParseKernel(tc.release)
		if err != nil || got != tc.want {
			t.Errorf("ParseKernel(%q) = %v, %v; want %v", tc.release, got, err, tc.want)
		}
		if got.AtLeast(MinKernel) != tc.min515 {
			t.Errorf("%v.AtLeast(%v) = %v", got, MinKernel, !tc.min515)
		}
	}
	for _, bad := range []string{"", "6", "x.y"} {
		if k, err := ParseKernel(bad); err == nil {
			t.Errorf("ParseKernel(%q) = %v, want an error", bad, k)
		}
	}
}
