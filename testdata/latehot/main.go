// Command latehot is a test target for hot keys found late. It reads
// commands on stdin:
//
//	late N   N reads of main.lateMap: the first N/2 each of a new key, then
//	         one in five of a single hot key and the rest each of a new key;
//	         prints "late KEY COUNT", the hot key and its true count
//
// and answers each with one line.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

const hotKey = "hot:alice@example.com"

var (
	lateMap = map[string]int{hotKey: 1}
	sink    int
)

//go:noinline
func late(n int) {
	hot, fresh := 0, 0
	next := func() string {
		fresh++
		return "k" + strconv.Itoa(fresh)
	}
	for i := 0; i < n; i++ {
		k := ""
		if i >= n/2 && i%5 == 0 {
			k = hotKey
			hot++
		} else {
			k = next()
		}
		sink += lateMap[k]
	}
	fmt.Printf("late %s %d\n", hotKey, hot)
}

func main() {
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "late" {
			n, _ := strconv.Atoi(f[1])
			late(n)
		}
	}
}
