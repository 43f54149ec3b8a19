package localconnect

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
)

// classData manages the worker's application class-data sharing (AppCDS)
// archive, which cuts the worker's start-up time without
// affecting its speed once running. The first worker started on a Java runtime
// dumps the archive when it stops after SIGTERM (-XX:ArchiveClassesAtExit);
// later workers map it (-XX:SharedArchiveFile). A missing or unusable archive
// only costs time: the JVM then loads classes as usual.
//
// Archives live in CacheDir/connect-<version>/cds, keyed by the java
// executable, its version and the classpath, so a Java upgrade or a new plugin
// makes a new one. At most one worker per key dumps at a time, guarded by
// a non-blocking file lock; it writes a temporary file that Stop renames into
// place.
type classData struct {
	archive string // the archive's final path
	dumpTo  string // where this worker's JVM dumps the archive; "" if it does not
	unlock  func() // releases the dump lock
}

// cdsLogArgs keeps the JVM's per-class CDS warnings out of worker.log.
var cdsLogArgs = []string{"-Xlog:cds=error,cds+dynamic=error"}

func newClassData(in *installation, java *javaInfo) *classData {
	dir := filepath.Join(in.home, "cds")
	sum := sha256.Sum256([]byte(java.path + "\n" + java.version + "\n" + in.classpath()))
	name := "worker-" + hex.EncodeToString(sum[:8])
	cd := &classData{archive: filepath.Join(dir, name+".jsa")}
	if fileExists(cd.archive) {
		return cd
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return cd
	}
	unlock, ok := tryLockFile(filepath.Join(dir, name+".lock"))
	if !ok {
		return cd
	}
	if fileExists(cd.archive) {
		unlock()
		return cd
	}
	// Dumps whose worker was never stopped by Stop (the parent died) are
	// left behind; nobody else dumps while we hold the lock.
	if stale, _ := filepath.Glob(filepath.Join(dir, name+".jsa.*.tmp")); len(stale) > 0 {
		for _, f := range stale {
			os.Remove(f)
		}
	}
	var r [6]byte
	_, _ = rand.Read(r[:])
	cd.dumpTo = cd.archive + "." + hex.EncodeToString(r[:]) + ".tmp"
	cd.unlock = unlock
	return cd
}

// workerArgs returns the JVM options that dump or use the archive.
func (cd *classData) workerArgs() []string {
	if cd.dumpTo != "" {
		return append([]string{"-XX:ArchiveClassesAtExit=" + cd.dumpTo}, cdsLogArgs...)
	}
	return cd.useArgs()
}

// useArgs returns the JVM options that map the archive, if there is one.
func (cd *classData) useArgs() []string {
	if !fileExists(cd.archive) {
		return nil
	}
	return append([]string{"-XX:SharedArchiveFile=" + cd.archive}, cdsLogArgs...)
}

// finish is called once the worker's JVM has exited: after a controlled
// shutdown (orderly), the dumped archive is moved into place.
func (cd *classData) finish(orderly bool) {
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
