package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
)

// Stats is one container's resource use, computed like `docker stats` computes it.
type Stats struct {
	Read time.Time // when the engine sampled it
	// CPUPercent is the share of one CPU used between the engine's two samples, times
	// 100: 150 means one and a half CPUs.
	CPUPercent float64
	// MemoryUsage is the memory used less the inactive page cache (what `docker stats`
	// shows), in bytes.
	MemoryUsage   uint64
	MemoryLimit   uint64 // bytes: the container's limit, or the host's memory
	MemoryPercent float64
	PIDs          uint64
}

// Stats reads a container's CPU and memory use. The engine samples twice, about a
// second apart, so that CPU has a delta to work from; Stats takes that long. A stopped
// container has no CPU or memory use (zeros).
func (d *Driver) Stats(ctx context.Context, containerID string) (Stats, error) {
	rd, err := d.cli.ContainerStats(ctx, containerID, false)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return Stats{}, fmt.Errorf("stats of container %s: no such container: %w", containerID, err)
		}
		return Stats{}, d.engineError("stats of container "+containerID, err)
	}
	defer rd.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(rd.Body).Decode(&s); err != nil {
		return Stats{}, fmt.Errorf("stats of container %s: decode: %w", containerID, err)
	}
	return statsFrom(s), nil
}

// statsFrom computes Stats from the engine's answer.
func statsFrom(s container.StatsResponse) Stats {
	out := Stats{
		Read:       s.Read,
		CPUPercent: cpuPercent(s.PreCPUStats, s.CPUStats),
		PIDs:       s.PidsStats.Current,
	}
	out.MemoryUsage = memoryUsage(s.MemoryStats)
	out.MemoryLimit = s.MemoryStats.Limit
	if out.MemoryLimit > 0 {
		out.MemoryPercent = float64(out.MemoryUsage) / float64(out.MemoryLimit) * 100
	}
	return out
}

// cpuPercent is the container's CPU time over the host's between two samples, times the
// number of online CPUs, times 100.
func cpuPercent(pre, cur container.CPUStats) float64 {
	if cur.CPUUsage.TotalUsage <= pre.CPUUsage.TotalUsage || cur.SystemUsage <= pre.SystemUsage {
		return 0
	}
	cpuDelta := float64(cur.CPUUsage.TotalUsage - pre.CPUUsage.TotalUsage)
	systemDelta := float64(cur.SystemUsage - pre.SystemUsage)
	cpus := float64(cur.OnlineCPUs)
	if cpus == 0 {
		cpus = float64(len(cur.CPUUsage.PercpuUsage))
	}
	return cpuDelta / systemDelta * cpus * 100
}

// memoryUsage is usage less the inactive page cache: total_inactive_file on cgroup v1,
// inactive_file on cgroup v2.
func memoryUsage(m container.MemoryStats) uint64 {
	for _, key := range []string{"total_inactive_file", "inactive_file"} {
		if v, ok := m.Stats[key]; ok {
			if v < m.Usage {
				return m.Usage - v
			}
			return m.Usage
		}
	}
	return m.Usage
}
