package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// userHZ is the unit of utime/stime in /proc/<pid>/stat. The kernel exports
// USER_HZ=100 to user space on x86 and arm64 regardless of CONFIG_HZ.
const userHZ = 100

// cpuTime reads utime+stime of pid ("self" for this process).
func cpuTime(pid string) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces; fields resume after ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%s/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// After ')': state is field 3, so utime (14) is f[11], stime (15) f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%s/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%s/stat: bad utime/stime", pid)
	}
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// memKB reads VmRSS and VmHWM (peak RSS) of pid in KiB.
func memKB(pid string) (rss, hwm int64, err error) {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm, sc.Err()
}

// cpuMeter measures a process's CPU over a window.
type cpuMeter struct {
	pid   string
	start time.Duration
	wall  time.Time
}

func startCPU(pid string) (*cpuMeter, error) {
	c, err := cpuTime(pid)
	if err != nil {
		return nil, err
	}
	return &cpuMeter{pid: pid, start: c, wall: time.Now()}, nil
}

// share returns CPU time used since start as a share of one core, and the CPU time.
func (m *cpuMeter) share() (float64, time.Duration, error) {
	c, err := cpuTime(m.pid)
	if err != nil {
		return 0, 0, err
	}
	used := c - m.start
	return float64(used) / float64(time.Since(m.wall)), used, nil
}

// histogram of durations in fixed buckets: exact to the bucket width up to
// width*len(buckets), then only counted as overflow (with the max kept).
type histogram struct {
	width   time.Duration
	buckets []atomic.Int64
	over    atomic.Int64
	n       atomic.Int64
	max     atomic.Int64
}

func newHistogram(width time.Duration, n int) *histogram {
	return &histogram{width: width, buckets: make([]atomic.Int64, n)}
}

func (h *histogram) add(d time.Duration) {
	d = max(d, 0)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			break
		}
	}
	i := int(d / h.width)
	if i >= len(h.buckets) {
		h.over.Add(1)
		return
	}
	h.buckets[i].Add(1)
}

// quantile returns the upper edge of the bucket holding quantile q.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := int64(q*float64(n) + 0.5)
	var seen int64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen >= rank {
			return time.Duration(i+1) * h.width
		}
	}
	return time.Duration(h.max.Load())
}

// machineBusy reads the busy CPU time of the whole machine from /proc/stat
// (all CPUs together: user, nice, system, irq, softirq, steal), and the part
// of it spent in softirq (where loopback packets are delivered; the kernel
// may charge it to no process).
func machineBusy() (busy, softirq time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var ticks, soft int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system irq softirq steal
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		ticks += n
		if i == 7 {
			soft = n
		}
	}
	return time.Duration(ticks) * time.Second / userHZ, time.Duration(soft) * time.Second / userHZ, nil
}
