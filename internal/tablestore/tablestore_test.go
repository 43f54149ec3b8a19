package tablestore

import (
	"fmt"
	"testing"
	"time"

	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/codebank/codebank/internal/testenv/wait"
)

func TestStore(t *testing.T) {
	dir := t.TempDir()
	st, err := New(dir)("table", 3)
	if err != nil {
		t.Fatal(err)
	}
	// Recovery: writes are batched, readable at once; the offset is kept in memory.
	for i := 0; i < 25_000; i++ {
		if err := st.Set(fmt.Sprint("k", i), []byte(fmt.Sprint("v", i))); err != nil {
			t.Fatal(err)
		}
		st.SetOffset(int64(i))
	}
	if v, _ := st.Get("k24999"); string(v) != "v24999" {
		t.Fatalf("Get of a pending write = %q", v)
	}
	if err := st.Delete("k7"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := st.Has("k7"); ok {
		t.Fatal("Has(deleted) = true")
	}
	if off, _ := st.GetOffset(-1); off != 24_999 {
		t.Fatalf("GetOffset = %d, want 24999", off)
	}
	if err := st.MarkRecovered(); err != nil {
		t.Fatal(err)
	}
	// Running: the timer writes a write to LevelDB within flushInterval, with the offset, with
	// no Close to flush it.
	st.Set("late", []byte("x"))
	st.SetOffset(25_000)
	s := st.(*store)
	waitFlushed(t, s, func() bool {
		v, _ := s.dbGet("late")
		off, _ := s.dbGet(offsetKey)
		return string(v) == "x" && len(off) > 0
	})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st, err = New(dir)("table", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for key, want := range map[string]string{"k0": "v0", "k24999": "v24999", "late": "x", "k7": ""} {
		if v, _ := st.Get(key); string(v) != want {
			t.Errorf("after reopening, Get(%s) = %q, want %q", key, v, want)
		}
	}
	if off, _ := st.GetOffset(-1); off != 25_000 {
		t.Errorf("after reopening, GetOffset = %d, want 25000", off)
	}
	it, err := st.Iterator()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for it.Next() {
		if string(it.Key()) == offsetKey {
			t.Fatal("the iterator showed the offset key")
		}
		n++
	}
	it.Release()
	if n != 25_000 {
		t.Errorf("iterated %d keys, want 25000", n)
	}
}

func TestOffsetDefault(t *testing.T) {
	st, err := New(t.TempDir())("table", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if off, _ := st.GetOffset(-2); off != -2 {
		t.Errorf("GetOffset of a new storage = %d, want the default -2", off)
	}
}

// TestReadsDuringFlush: every read sees the latest write of its key, while batches are written
// by the timer and by full batches, and while other keys are read at the same time.
func TestReadsDuringFlush(t *testing.T) {
	st, err := New(t.TempDir())("table", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.MarkRecovered(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // another partition's reader: never blocks the writer's reads
		for {
			select {
			case <-done:
				return
			default:
				st.Get("other")
			}
		}
	}()
	defer close(done)
	for i := 0; i < 3*batchRecords; i++ {
		key := fmt.Sprint("k", i%500)
		want := fmt.Sprint(i)
		if err := st.Set(key, []byte(want)); err != nil {
			t.Fatal(err)
		}
		st.SetOffset(int64(i))
		if v, err := st.Get(key); err != nil || string(v) != want {
			t.Fatalf("after Set(%s, %s): Get = %q, %v", key, want, v, err)
		}
		if i%1000 == 0 { // let the timer write a batch now and then, between full batches
			waitFlushed(t, st.(*store), func() bool { return true })
		}
	}
	s := st.(*store)
	waitFlushed(t, s, func() bool { return true })
	for k := 0; k < 500; k++ {
		want := fmt.Sprint(3*batchRecords - 500 + k)
		if v, _ := s.dbGet(fmt.Sprint("k", k)); string(v) != want {
			t.Fatalf("after the last flush, LevelDB holds k%d = %q, want %s", k, v, want)
		}
	}
	if off, _ := st.GetOffset(-1); off != 3*batchRecords-1 {
		t.Fatalf("GetOffset = %d", off)
	}
}

// TestUnrecoveredReadsDuringFlush: reads before MarkRecovered (a view's, always) see every
// earlier write even while a batch is on its way to LevelDB, with the overlay (NewView) and
// without it (New).
func TestUnrecoveredReadsDuringFlush(t *testing.T) {
	for name, b := range map[string]func(string) storage.Builder{"New": New, "NewView": NewView} {
		t.Run(name, func(t *testing.T) { unrecoveredReadsDuringFlush(t, b) })
	}
}

func unrecoveredReadsDuringFlush(t *testing.T, builder func(string) storage.Builder) {
	st, err := builder(t.TempDir())("table", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.(*store)
	for i := 0; i < 2000; i++ {
		want := fmt.Sprint(i)
		if err := st.Set("k", []byte(want)); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { s.flushLater(); close(done) }() // the timer's flush, racing the read
		for taken := false; !taken; {               // until the flush has taken the batch
			s.mu.Lock()
			taken = s.batch.Len() == 0
			s.mu.Unlock()
		}
		if v, err := st.Get("k"); err != nil || string(v) != want {
			t.Fatalf("write %d: Get = %q, %v", i, v, err)
		}
		<-done
	}
}

// waitFlushed waits until the store's timer has written its batch (nothing is pending) and
// written reports true. The timer is due within flushInterval; the wait allows a busy machine
// far more.
func waitFlushed(t *testing.T, s *store, written func() bool) {
	t.Helper()
	wait.Until(t, 10*time.Second, fmt.Sprintf("the timer to write the batch (flush interval %v)", flushInterval), func() bool {
		s.mu.Lock()
		pending := s.batch.Len() > 0 || len(s.flushing) > 0
		s.mu.Unlock()
		return !pending && written()
	})
}

// TestBusyMemtables: a busy table (NewBusy) opens LevelDB with 4 MB memtables, the others
// (New, NewView) with 1 MB. (Whether LevelDB has written a memtable out is up to its own
// goroutine, so the test reads the option each storage was opened with.)
func TestBusyMemtables(t *testing.T) {
	for name, c := range map[string]struct {
		b    func(string) storage.Builder
		want int
	}{"New": {New, 1 << 20}, "NewView": {NewView, 1 << 20}, "NewBusy": {NewBusy, 4 << 20}} {
		st, err := c.b(t.TempDir())("table", 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.(*store).memtable; got != c.want {
			t.Errorf("%s: memtables of %d bytes, want %d", name, got, c.want)
		}
		st.Close()
	}
}

// TestRangesBypassTheCache: a range read (a statement page) leaves LevelDB's block cache as it
// was; a point read of the same keys fills it.
func TestRangesBypassTheCache(t *testing.T) {
	st, err := NewView(t.TempDir())("table", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.(*store)
	for i := 0; i < 20_000; i++ {
		if err := st.Set(fmt.Sprintf("card|%05d", i), make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.MarkRecovered(); err != nil {
		t.Fatal(err)
	}
	// Into table files, which are what the block cache holds blocks of.
	if err := s.db.CompactRange(util.Range{}); err != nil {
		t.Fatal(err)
	}
	cached := func() int {
		var stats leveldb.DBStats
		if err := s.db.Stats(&stats); err != nil {
			t.Fatal(err)
		}
		return stats.BlockCacheSize
	}
	before := cached()
	it, err := st.IteratorWithRange([]byte("card|"), []byte("card|2"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for it.Next() {
		n++
	}
	it.Release()
	if n != 20_000 {
		t.Fatalf("the range read %d keys, want 20000", n)
	}
	if got := cached(); got != before {
		t.Errorf("a range read of 2 MB changed the block cache from %d to %d bytes", before, got)
	}
	for i := 0; i < 20_000; i += 100 {
		if _, err := st.Get(fmt.Sprintf("card|%05d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := cached(); got <= before {
		t.Errorf("point reads left the block cache at %d bytes (before: %d): the cache is not measured", got, before)
	}
}
