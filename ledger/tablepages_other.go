//go:build !linux

package ledger

// residentFileBytes and trimTablePages do nothing where the ledger cannot
// read its mappings: the kernel reclaims table pages under memory pressure
// on its own.
func residentFileBytes() (int64, error) { return 0, nil }

func trimTablePages(dir string) (before, after int64, err error) { return 0, 0, nil }
