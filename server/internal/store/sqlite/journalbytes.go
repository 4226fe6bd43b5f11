package sqlite

// The journal's byte bound. The writer keeps a running total of the bytes
// of the journal's stored documents: counted once, in the first transaction
// that prunes by bytes, then moved by every append and every delete it
// commits. Pruning by bytes then costs what it deletes, not a scan of the
// whole journal. A failed commit makes the writer count again.

// countJournal counts the journal's bytes at the start of a transaction
// that prunes by bytes, when the total is not known yet.
func (w *wtx) countJournal(ops []*op) error {
	if w.s.journalBytes.known {
		return nil
	}
	for _, o := range ops {
		if o.prune && o.maxBytes > 0 {
			if err := w.tx.QueryRow(`SELECT coalesce(sum(length(json)), 0) FROM journal`).Scan(&w.s.journalBytes.held); err != nil {
				return w.s.fail("count journal bytes", err)
			}
			w.s.journalBytes.known = true
			return nil
		}
	}
	return nil
}

// deleteJournal runs one of the prune statements (each deletes at most
// pruneChunk entries and returns their sizes) and accounts for it in o.
func (w *wtx) deleteJournal(o *op, stmt int, arg int64) error {
	rows, err := w.stmt(stmt).Query(arg, pruneChunk)
	if err != nil {
		return w.s.fail("prune journal", err)
	}
	defer rows.Close()
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			return w.s.fail("prune journal", err)
		}
		o.pruned++
		o.jdelta -= n
	}
	if err := rows.Err(); err != nil {
		return w.s.fail("prune journal", err)
	}
	return nil
}

// pruneBytes deletes the oldest entries, at most pruneChunk, while the
// journal holds more than o.maxBytes: it reads the oldest entries' sizes
// until they cover the excess, then deletes up to there.
func (w *wtx) pruneBytes(o *op) error {
	if o.maxBytes <= 0 || !w.s.journalBytes.known {
		return nil
	}
	over := w.s.journalBytes.held + w.pending + o.jdelta - o.maxBytes
	if over <= 0 {
		return nil
	}
	rows, err := w.tx.Query(`SELECT id, length(json) FROM journal ORDER BY id LIMIT ?`, pruneChunk)
	if err != nil {
		return w.s.fail("prune journal", err)
	}
	var upTo, covered int64
	for rows.Next() && covered < over {
		var n int64
		if err := rows.Scan(&upTo, &n); err != nil {
			rows.Close()
			return w.s.fail("prune journal", err)
		}
		covered += n
	}
	rows.Close()
	if upTo == 0 {
		return nil
	}
	return w.deleteJournal(o, wPruneUpTo, upTo)
}
