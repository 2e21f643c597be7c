package ledger

// The resident pages of Badger's table files.
//
// Badger writes every table through a shared memory map of the new file
// (table.CreateTable copies the whole table into it) and keeps the file
// mapped while the table lives. Every page of every table written since the
// process started therefore stays in its resident set until the kernel
// needs the memory back: under sustained appends the server's resident set
// grows with the store (in a 20-minute flat-out run, 0.5 GB of table pages
// after five minutes and rising with the log), although the pages are clean
// file pages the kernel may drop at any time. Badger has no option to write
// tables otherwise, so the ledger hands them back itself: every
// tablePagesInterval it reads how many bytes of its table files are
// resident in its mappings and, past Options.TablePagesBytes, asks the
// kernel to reclaim them (madvise MADV_PAGEOUT). A table read afterwards is
// read from the page cache or the disk again, page by page, as any file
// read is; proofs read tiles through the tile cache, and the block cache
// keeps recently read blocks.

import (
	"log/slog"
	"time"
)

// DefaultTablePagesBytes is the default bound of the table pages the
// ledger keeps resident (Options.TablePagesBytes).
const DefaultTablePagesBytes = 256 << 20

// tablePagesInterval is how often the resident table pages are measured.
const tablePagesInterval = 10 * time.Second

// pageOutTables runs until stop is closed, handing back the resident
// pages of dir's table files whenever they exceed budget bytes.
func pageOutTables(dir string, budget int64, log *slog.Logger, stop <-chan struct{}) {
	t := time.NewTicker(tablePagesInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		before, after, err := trimTablePages(dir, budget)
		if err != nil {
			log.Warn("handing back table pages", "err", err)
			return
		}
		if before > budget {
			log.Debug("handed back table pages", "resident_bytes", before, "after_bytes", after)
		}
	}
}
