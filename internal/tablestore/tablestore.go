// Package tablestore is the local storage of goka tables (and views): LevelDB, like goka's
// own, with writes gathered into batches.
//
// Goka writes each record of a table to its local storage on its own, one LevelDB write, so
// one journal write system call, per record. Recovering a million accounts from the changelog
// spent most of its time there. Here writes go into a batch (and an overlay that reads see)
// which is written as one: every batchRecords records, every batchBytes bytes, and
// flushInterval after the first write at the latest. The table offset goka stores goes into
// the same batch as the records it covers, so the storage is always a consistent prefix of the
// changelog: after a crash goka resumes from the stored offset and replays what the last batch
// had not written yet. Nothing is lost; the storage is a cache of the changelog.
//
// A batch is written outside the store's lock, so reads go on meanwhile, from the overlay of
// the batch being written. Before goka marks the storage recovered the overlay is not kept (a
// processor's table is not read while it recovers, and a million map entries cost time and
// memory); a read then writes the batch and waits for it instead. Goka's views never mark
// their storage recovered and are read while they load: their storage (NewView) keeps the
// overlay from the start. A failed write is the storage's error from then on: the processor stops, and its
// restart recovers from the last offset written.
//
// Its main type is the Builder returned by New.
package tablestore

import (
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/filter"
	ldbiter "github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

const (
	offsetKey     = "__offset" // goka's own key, so storage written by either is read by both
	batchRecords  = 10_000
	batchBytes    = 4 << 20
	flushInterval = 50 * time.Millisecond
)

// The sizes of LevelDB's memtables. LevelDB allocates each memtable at its size when it opens
// one, and keeps a spare: a process with every role opens 24 partitions' tables (the
// authorizer's, the statement lines, the store's orders twice), most of them written slowly, so
// they get small ones. A table written for every payment gets larger ones: each memtable
// becomes a level-0 file, and every few of those are merged with the whole of level 1, so
// small memtables rewrite level 1 more often. The authorizer with 100,000 accounts at 10,000
// payments a second used 72% of a core on 1 MB memtables against 56% on 4 MB, and fell behind.
// A batch larger than the memtable (recovery writes up to batchBytes at once) gets one of its
// own size.
const (
	writeBuffer     = 1 << 20
	busyWriteBuffer = 4 << 20
)

// New returns a goka storage builder keeping each partition's table under dir, in
// "TOPIC.PARTITION" like goka's default builder, for processors.
func New(dir string) storage.Builder { return build(dir, false, writeBuffer) }

// NewBusy is New for a table written for every payment, the authorizer's accounts: its
// memtables are larger (busyWriteBuffer).
func NewBusy(dir string) storage.Builder { return build(dir, false, busyWriteBuffer) }

// NewView is New for goka views. A view never marks its storage recovered and is read while
// it loads, so its reads are always served from the overlay instead of writing the batch
// first.
func NewView(dir string) storage.Builder { return build(dir, true, writeBuffer) }

func build(dir string, view bool, memtable int) storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		db, err := leveldb.OpenFile(filepath.Join(dir, fmt.Sprintf("%s.%d", topic, partition)), &opt.Options{
			// Caches sized so that the tables of a million cards fit an authorizer in 150 MB
			// (six partitions); no compression: a busy authorizer reads a block for nearly
			// every payment, and decompressing it cost more than the disk it saves.
			BlockCacheCapacity: 6 << 20,
			Compression:        opt.NoCompression,
			// A Get looks into every level-0 table that may hold the key; the filter (10 bits a
			// key, ~1% false positives) answers for the tables that do not.
			Filter: filter.NewBloomFilter(10),
			// See writeBuffer and busyWriteBuffer.
			WriteBuffer:            memtable,
			OpenFilesCacheCapacity: 64,
			// Recovery writes a whole table as fast as it can: let level-0 files pile up a
			// little more before compacting, and far more before LevelDB slows writers down.
			CompactionL0Trigger:    8,
			WriteL0SlowdownTrigger: 32,
			WriteL0PauseTrigger:    64,
		})
		if err != nil {
			return nil, fmt.Errorf("open table storage: %w", err)
		}
		st := newStore(db)
		st.view, st.memtable = view, memtable
		return st, nil
	}
}

// entry is a pending write: a value, or a deletion.
type entry struct {
	value   []byte
	deleted bool
}

type store struct {
	db *leveldb.DB

	// flushMu serializes flushes, so batches reach LevelDB in the order they were filled. It
	// is taken before mu, and held while a batch is written; mu is not, so reads go on
	// meanwhile (from flushing, then LevelDB).
	flushMu sync.Mutex

	mu         sync.Mutex
	batch      *leveldb.Batch
	spareBatch *leveldb.Batch   // the batch written last, reset, for the next one
	pending    map[string]entry // the batch's writes, for reads; empty while recovering
	flushing   map[string]entry // the batch being written, until it is
	spare      map[string]entry // a cleared map for the next batch
	bytes      int
	offset     int64
	hasOffset  bool
	recovered  bool
	view       bool // keep the overlay from the first write (see NewView)
	memtable   int  // the size of LevelDB's memtables (writeBuffer or busyWriteBuffer)
	timer      *time.Timer
	err        error // a failed write: the storage no longer matches the changelog
}

func newStore(db *leveldb.DB) *store {
	return &store{db: db, batch: new(leveldb.Batch), pending: map[string]entry{}, spare: map[string]entry{}}
}

func (s *store) Open() error { return nil }

func (s *store) Close() error {
	err := s.flush()
	s.mu.Lock()
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *store) Has(key string) (bool, error) {
	v, err := s.Get(key)
	return v != nil, err
}

func (s *store) Get(key string) ([]byte, error) {
	s.mu.Lock()
	if s.err != nil {
		defer s.mu.Unlock()
		return nil, s.err
	}
	if !s.recovered && !s.view {
		// Records written before MarkRecovered are not indexed in pending (see write): a
		// read then writes them first, and waits for a batch already on its way. Goka's
		// processors never read before recovery.
		s.mu.Unlock()
		if err := s.flush(); err != nil {
			return nil, err
		}
		return s.dbGet(key)
	}
	e, ok := s.pending[key]
	if !ok {
		e, ok = s.flushing[key]
	}
	s.mu.Unlock()
	if ok {
		if e.deleted {
			return nil, nil
		}
		return e.value, nil
	}
	return s.dbGet(key)
}

func (s *store) dbGet(key string) ([]byte, error) {
	v, err := s.db.Get([]byte(key), nil)
	if err == leveldb.ErrNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read table storage (key %s): %w", key, err)
	}
	return v, nil
}

func (s *store) Set(key string, value []byte) error {
	return s.write(key, entry{value: value})
}

func (s *store) Delete(key string) error {
	return s.write(key, entry{deleted: true})
}

func (s *store) write(key string, e entry) error {
	s.mu.Lock()
	if err := s.err; err != nil {
		s.mu.Unlock()
		return err
	}
	if e.deleted {
		s.batch.Delete([]byte(key))
	} else {
		s.batch.Put([]byte(key), e.value)
	}
	if s.recovered || s.view {
		// Reads see the batch before it is written. While recovering nothing reads the table,
		// so recovered records go to the batch alone: no map insert and no key copy for each
		// of a million records.
		s.pending[key] = e
	}
	s.bytes += len(key) + len(e.value)
	full := s.batch.Len() >= batchRecords || s.bytes >= batchBytes
	if !full {
		s.armLocked()
	}
	s.mu.Unlock()
	if full {
		return s.flush()
	}
	return nil
}

// armLocked makes sure a flush comes flushInterval after the batch's first write.
func (s *store) armLocked() {
	if s.timer == nil {
		s.timer = time.AfterFunc(flushInterval, s.flushLater)
	} else if s.batch.Len() == 1 {
		s.timer.Reset(flushInterval)
	}
}

func (s *store) flushLater() {
	_ = s.flush() // a failure is kept in s.err and returned by every later call
}

// flush writes the batch, with the offset it reaches once recovered, while reads and writes
// go on.
func (s *store) flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	if s.err != nil {
		defer s.mu.Unlock()
		return s.err
	}
	if s.recovered && s.hasOffset {
		s.batch.Put([]byte(offsetKey), []byte(strconv.FormatInt(s.offset, 10)))
		s.hasOffset = false
	}
	if s.batch.Len() == 0 {
		s.mu.Unlock()
		return nil
	}
	b := s.batch
	if s.batch = s.spareBatch; s.batch == nil {
		s.batch = new(leveldb.Batch)
	}
	s.spareBatch = nil
	s.flushing, s.pending, s.spare = s.pending, s.spare, nil
	s.bytes = 0
	s.mu.Unlock()

	err := s.db.Write(b, nil)

	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.flushing)
	s.spare, s.flushing = s.flushing, nil
	// LevelDB has copied the batch into its journal and memory table: keep its buffer, grown
	// to the size of a batch, for the one after next.
	b.Reset()
	s.spareBatch = b
	if err != nil {
		s.err = fmt.Errorf("write table storage: %w", err)
		return s.err
	}
	return nil
}

func (s *store) GetOffset(def int64) (int64, error) {
	s.mu.Lock()
	if s.offset != 0 || s.hasOffset {
		defer s.mu.Unlock()
		return s.offset, nil
	}
	s.mu.Unlock()
	v, err := s.db.Get([]byte(offsetKey), nil)
	if err == leveldb.ErrNotFound {
		return def, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read table offset: %w", err)
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("decode table offset %q: %w", v, err)
	}
	return n, nil
}

// SetOffset records the changelog offset the storage has reached. While recovering, the
// offset is stored by MarkRecovered (as goka does); afterwards with the next batch.
func (s *store) SetOffset(offset int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset, s.hasOffset = offset, true
	if s.recovered && s.batch.Len() == 0 {
		// Nothing else pending: store the offset on its own, with the next flush.
		s.batch.Put([]byte(offsetKey), []byte(strconv.FormatInt(offset, 10)))
		s.hasOffset = false
		s.armLocked()
	}
	return nil
}

func (s *store) MarkRecovered() error {
	s.mu.Lock()
	s.recovered = true
	if s.offset != 0 || s.hasOffset {
		s.hasOffset = true
	}
	s.mu.Unlock()
	return s.flush()
}

func (s *store) Iterator() (storage.Iterator, error) {
	if err := s.flush(); err != nil {
		return nil, err
	}
	return &iterator{s.db.NewIterator(nil, &opt.ReadOptions{DontFillCache: true})}, nil
}

// IteratorWithRange reads a range around the block cache, as Iterator reads everything. A range
// is a card's statement lines, read once for a page: kept in the cache, the pages of a soak's
// statements filled 41 MB of it, a bit at a time, for half an hour. The cache is for the
// blocks point reads come back to (the authorizer's accounts); a page read twice comes from the
// operating system's page cache the second time.
func (s *store) IteratorWithRange(start, limit []byte) (storage.Iterator, error) {
	if err := s.flush(); err != nil {
		return nil, err
	}
	r := util.BytesPrefix(start)
	if len(limit) > 0 {
		r = &util.Range{Start: start, Limit: limit}
	}
	return &iterator{s.db.NewIterator(r, &opt.ReadOptions{DontFillCache: true})}, nil
}

// iterator adapts LevelDB's iterator to goka's, skipping the offset key.
type iterator struct {
	it ldbiter.Iterator
}

func (i *iterator) Next() bool {
	for i.it.Next() {
		if string(i.it.Key()) != offsetKey {
			return true
		}
	}
	return false
}

func (i *iterator) Err() error  { return i.it.Error() }
func (i *iterator) Key() []byte { return i.it.Key() }
func (i *iterator) Release()    { i.it.Release() }
func (i *iterator) Seek(k []byte) bool {
	if !i.it.Seek(k) {
		return false
	}
	if string(i.it.Key()) == offsetKey {
		return i.Next()
	}
	return true
}

func (i *iterator) Value() ([]byte, error) {
	v := i.it.Value()
	return append([]byte(nil), v...), nil
}
