package benchkit

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Machine describes where and when a benchmark ran, for the line under each table.
type Machine struct {
	CPUs    int
	Model   string     // CPU model name
	Load    [3]float64 // load average (1, 5, 15 min) when read
	Go      string
	HAProxy string // "2.6.12" or "" when not installed
	When    time.Time
}

// ReadMachine reads the machine's description now.
func ReadMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), When: time.Now().UTC()}
	m.Load = LoadAvg()
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if out, err := exec.Command("haproxy", "-v").Output(); err == nil {
		// "HAProxy version 2.6.12-1+deb12u1 2023/..."
		if f := strings.Fields(string(out)); len(f) >= 3 {
			m.HAProxy = f[2]
		}
	}
	return m
}

// LoadAvg is /proc/loadavg's three load averages (zeros when it cannot be read).
func LoadAvg() [3]float64 {
	var l [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err == nil {
		fmt.Sscanf(string(b), "%f %f %f", &l[0], &l[1], &l[2])
	}
	return l
}

// Line is the one-line description written under a table: machine, load average at
// the start (and end, if given), the date and the command that made it.
func (m Machine) Line(command string, end *[3]float64) string {
	load := fmt.Sprintf("load average %.2f %.2f %.2f", m.Load[0], m.Load[1], m.Load[2])
	if end != nil {
		load += fmt.Sprintf(" at the start, %.2f %.2f %.2f at the end", end[0], end[1], end[2])
	}
	hap := ""
	if m.HAProxy != "" {
		hap = ", HAProxy " + m.HAProxy
	}
	return fmt.Sprintf("_%d × %s, %s%s; %s; %s UTC; `%s`_", m.CPUs, m.Model, m.Go, hap, load,
		m.When.Format("2006-01-02 15:04"), command)
}
