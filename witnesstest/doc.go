// Package witnesstest holds the tests of warrant against a real C2SP
// tlog-witness: the transparency-dev witness library, run in process. It is
// a module of its own so that the witness's dependencies (and the newer
// formats and merkle versions it needs) stay out of warrant's build; the
// warrant binary it tests is built from the main module as released.
package witnesstest
