package ledger

// The resident pages of Badger's table files.
//
// Badger writes every table through a shared memory map of the new file
// (table.CreateTable copies the whole table into it) and keeps the file
// mapped while the table lives. Every page of every table written since the
// process started therefore stays in its resident set until the kernel
// needs the memory back: under sustained appends the server's resident set
// grows with the store (in a 20-minute flat-out run, up to 0.9 GB of table
// pages, rising with the log, of a peak of 1.45 GB), although they are
// clean file pages the kernel may drop at any time. Badger has no option to write
// tables otherwise, so the ledger hands them back itself: every
// tablePagesInterval it reads how many file pages it has resident
// (/proc/self/statm, a constant-time read) and, past
// Options.TablePagesBytes, asks the kernel to reclaim the pages of its table
// files (madvise MADV_PAGEOUT on each mapping listed in /proc/self/smaps).
// A table read afterwards is read from the page cache or the disk again,
// page by page, as any file read is; proofs read tiles through the tile
// cache, and the block cache keeps recently read blocks.

import (
	"log/slog"
	"time"
)

// DefaultTablePagesBytes is the default bound of the table pages the
// ledger keeps resident (Options.TablePagesBytes).
const DefaultTablePagesBytes = 192 << 20

// tablePagesInterval is how often the resident file pages are measured:
// a compaction can write a few hundred MiB of tables in seconds (350 MiB
// within 5 s in the sustained run, where a 10 s interval let the table
// pages reach 680 MiB).
const tablePagesInterval = 500 * time.Millisecond

// pageOutTables runs until stop is closed, handing back the resident
// pages of dir's table files whenever the process's resident file pages
// exceed budget bytes. It stops, after one warning, where the kernel
// cannot tell it or cannot do it.
func pageOutTables(dir string, budget int64, log *slog.Logger, stop <-chan struct{}) {
	t := time.NewTicker(tablePagesInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		resident, err := residentFileBytes()
		if err == nil && resident > budget {
			var before, after int64
			before, after, err = trimTablePages(dir)
			log.Debug("handed back table pages", "file_bytes", resident, "table_bytes", before, "table_bytes_after", after)
		}
		if err != nil {
			log.Warn("handing back table pages", "err", err)
			return
		}
	}
}
