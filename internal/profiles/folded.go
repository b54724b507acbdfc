package profiles

import (
	"bufio"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/maptrace/maptrace/internal/report"
)

// WriteFolded writes folded stacks, one "root;...;leaf value" line per
// distinct stack, as flamegraph.pl, inferno and speedscope read them.
//
// Mutex waiter stacks sit under a synthetic root frame "mutex:<name>" and are
// valued in nanoseconds waited; map operation sites sit under "map:<name>"
// and are valued in operations. The roots keep the two apart in a flame
// graph even though they share one file. Identical stacks are summed, stacks
// with a zero value are left out (they would draw nothing), and lines are
// sorted so that the output of equal reports is byte for byte equal.
func WriteFolded(w io.Writer, r *report.Report) error {
	sums := map[string]uint64{}
	for _, s := range slices.Concat(waiterStacks(r), siteStacks(r)) {
		if s.value > 0 {
			sums[strings.Join(s.path, ";")] += s.value
		}
	}
	bw := bufio.NewWriter(w)
	for _, k := range slices.Sorted(maps.Keys(sums)) {
		bw.WriteString(k)
		bw.WriteByte(' ')
		bw.WriteString(strconv.FormatUint(sums[k], 10))
		bw.WriteByte('\n')
	}
	return bw.Flush()
}
