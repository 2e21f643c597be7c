package ledger

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// tableMapping is one mapping of a table file: its address range and the
// bytes of it resident.
type tableMapping struct {
	start, end uintptr
	resident   int64
}

// tableMappings reads /proc/self/smaps for the mappings of the table files
// (*.sst) in dir, and the bytes of them resident.
func tableMappings(dir string) ([]tableMapping, int64, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, 0, err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	prefix := abs + string(filepath.Separator)
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return nil, 0, fmt.Errorf("reading the process's mappings: %w", err)
	}
	defer f.Close()
	var out []tableMapping
	var total int64
	cur := -1 // index in out of the mapping whose fields follow, or -1
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if m, ok := smapsHeader(line); ok {
			cur = -1
			if m.path != "" && strings.HasPrefix(m.path, prefix) && strings.HasSuffix(m.path, ".sst") {
				out = append(out, tableMapping{start: m.start, end: m.end})
				cur = len(out) - 1
			}
			continue
		}
		if cur >= 0 && bytes.HasPrefix(line, []byte("Rss:")) {
			kb, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimPrefix(line, []byte("Rss:")), []byte("kB")))), 10, 64)
			if err != nil {
				return nil, 0, fmt.Errorf("smaps line %q: %w", line, err)
			}
			out[cur].resident = kb << 10
			total += kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		return nil, 0, fmt.Errorf("reading the process's mappings: %w", err)
	}
	return out, total, nil
}

type smapsMapping struct {
	start, end uintptr
	path       string
}

// smapsHeader parses a mapping's first line in smaps ("start-end perms
// offset dev inode [path]"); field lines ("Rss: 4 kB") are not headers.
func smapsHeader(line []byte) (smapsMapping, bool) {
	fields := strings.Fields(string(line))
	if len(fields) < 5 {
		return smapsMapping{}, false
	}
	lo, hi, ok := strings.Cut(fields[0], "-")
	if !ok {
		return smapsMapping{}, false
	}
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	if err1 != nil || err2 != nil {
		return smapsMapping{}, false
	}
	m := smapsMapping{start: uintptr(start), end: uintptr(end)}
	if len(fields) >= 6 {
		m.path = strings.Join(fields[5:], " ")
	}
	return m, true
}

// residentFileBytes is the process's resident file-backed (and shared)
// memory: the third field of /proc/self/statm, in pages.
func residentFileBytes() (int64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, fmt.Errorf("reading the process's memory: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return 0, fmt.Errorf("/proc/self/statm is %q", b)
	}
	pages, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/self/statm is %q: %w", b, err)
	}
	return pages * int64(os.Getpagesize()), nil
}

// trimTablePages asks the kernel to reclaim the resident pages of dir's
// table files, and returns their resident bytes before and after.
//
// MADV_PAGEOUT is safe against the race it cannot avoid: a table may be
// closed, and its address range reused, between reading smaps and the
// call. Whatever then lies at that address only loses pages the kernel can
// restore: clean file pages are read again, dirty ones are written back
// first, and anonymous memory is kept (there is no swap) or swapped out,
// never discarded as MADV_DONTNEED would.
func trimTablePages(dir string) (before, after int64, err error) {
	maps, before, err := tableMappings(dir)
	if err != nil || before == 0 {
		return before, before, err
	}
	for _, m := range maps {
		if m.resident == 0 {
			continue
		}
		_, _, e := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_PAGEOUT)
		if e != 0 && e != unix.ENOMEM { // ENOMEM: the table was closed meanwhile
			return before, before, fmt.Errorf("madvise(MADV_PAGEOUT) of a table mapping: %w", e)
		}
	}
	_, after, err = tableMappings(dir)
	return before, after, err
}
