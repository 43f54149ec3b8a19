package jvm

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"

	"github.com/codebank/codebank/internal/devenv/osproc"
)

// ClassData is a server's application class-data sharing (AppCDS) archive,
// which cuts a JVM's start-up time (by a third to a half for these servers)
// without affecting its speed once running. The first server started on a
// Java runtime dumps the archive when it stops after SIGTERM
// (-XX:ArchiveClassesAtExit); later servers, and one-shot tools with
// UseArgs, map it (-XX:SharedArchiveFile). A missing or unusable archive only
// costs time: the JVM then loads classes as usual.
//
// At most one process per archive dumps at a time, guarded by a non-blocking
// file lock; its JVM writes a temporary file that Process.Stop renames into
// place after an orderly shutdown.
type ClassData struct {
	archive string // the archive's final path
	lock    string // the dump lock's file
	dumpTo  string // where the running JVM dumps the archive; "" if it does not
	unlock  func() // releases the dump lock
}

// cdsLogArgs keeps the JVM's per-class CDS warnings out of the server's log.
var cdsLogArgs = []string{"-Xlog:cds=error,cds+dynamic=error"}

// NewClassData returns the archive dir/name-KEY.jsa, where KEY is a hash of
// the java executable, its version and, if not empty, the classpath, so that
// a Java upgrade makes a new archive.
func NewClassData(dir, name string, java *Java, classpath string) *ClassData {
	key := java.Path + "\n" + java.Version
	if classpath != "" {
		key += "\n" + classpath
	}
	sum := sha256.Sum256([]byte(key))
	base := filepath.Join(dir, name+"-"+hex.EncodeToString(sum[:8]))
	return &ClassData{archive: base + ".jsa", lock: base + ".lock"}
}

// UseArgs returns the JVM options that map the archive, if there is one.
func (cd *ClassData) UseArgs() []string {
	if !fileExists(cd.archive) {
		return nil
	}
	return append([]string{"-XX:SharedArchiveFile=" + cd.archive}, cdsLogArgs...)
}

// serverArgs returns the options of a server's JVM: they dump the archive if
// there is none and nobody else is dumping it, else they use it.
func (cd *ClassData) serverArgs() []string {
	if cd.prepareDump() {
		return append([]string{"-XX:ArchiveClassesAtExit=" + cd.dumpTo}, cdsLogArgs...)
	}
	return cd.UseArgs()
}

// prepareDump takes the dump lock and picks the temporary file if the
// archive is missing and the lock free.
func (cd *ClassData) prepareDump() bool {
	if fileExists(cd.archive) {
		return false
	}
	if err := os.MkdirAll(filepath.Dir(cd.archive), 0o755); err != nil {
		return false
	}
	unlock, ok := osproc.TryLockFile(cd.lock)
	if !ok {
		return false
	}
	if fileExists(cd.archive) {
		unlock()
		return false
	}
	// Dumps whose server was never stopped by Stop (the parent died) are
	// left behind; nobody else dumps while we hold the lock.
	if stale, _ := filepath.Glob(cd.archive + ".*.tmp"); len(stale) > 0 {
		for _, f := range stale {
			os.Remove(f)
		}
	}
	var r [6]byte
	_, _ = rand.Read(r[:])
	cd.dumpTo = cd.archive + "." + hex.EncodeToString(r[:]) + ".tmp"
	cd.unlock = unlock
	return true
}

// finish is called once the server's JVM has exited: after an orderly
// shutdown, the dumped archive is moved into place.
func (cd *ClassData) finish(orderly bool) {
	if cd.dumpTo == "" {
		return
	}
	if fi, err := os.Stat(cd.dumpTo); orderly && err == nil && fi.Size() > 0 {
		_ = os.Rename(cd.dumpTo, cd.archive)
	}
	os.Remove(cd.dumpTo)
	cd.unlock()
	cd.dumpTo = ""
}
