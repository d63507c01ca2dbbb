//! Uniqueness across all batches of the input: every row whose key (one column, or several
//! together) occurs more than once fails, as with Pandera's `keep=False`. Rows with a null in
//! the key are skipped, as Pandera skips them.

use arrow_array::{Array, RecordBatch};
use hashbrown::HashTable;

use crate::error::Result;
use crate::keys::{KeyColumns, KeyEncoder};

/// For each batch, the positions of its rows whose key is not unique in the whole input.
pub fn duplicated_rows(batches: &[RecordBatch], columns: &[String]) -> Result<Vec<Vec<usize>>> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let encoder = KeyEncoder::new(first, columns)?;
    let keys: Vec<KeyColumns> = batches
        .iter()
        .map(|b| encoder.keys(b))
        .collect::<Result<_>>()?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    // Entries are first occurrences `(batch, row)`; `repeated[e]` says whether it came again.
    let mut table: HashTable<u32> = HashTable::with_capacity(rows);
    let mut entries: Vec<(u32, u32)> = Vec::with_capacity(rows);
    let mut repeated: Vec<bool> = Vec::with_capacity(rows);
    let mut duplicated: Vec<Vec<usize>> = vec![Vec::new(); batches.len()];
    for (b, (batch, batch_keys)) in batches.iter().zip(&keys).enumerate() {
        let nulls: Vec<_> = columns
            .iter()
            .filter_map(|c| batch.column_by_name(c)?.logical_nulls())
            .collect();
        let has_null = |i: usize| nulls.iter().any(|n| n.is_null(i));
        for i in 0..batch.num_rows() {
            if has_null(i) {
                continue;
            }
            let hash = batch_keys.hash(i);
            let found = table.find(hash, |&e| {
                let (eb, er) = entries[e as usize];
                keys[eb as usize].same(er as usize, batch_keys, i)
            });
            match found {
                Some(&e) => {
                    repeated[e as usize] = true;
                    duplicated[b].push(i);
                }
                None => {
                    let e = entries.len() as u32;
                    entries.push((b as u32, i as u32));
                    repeated.push(false);
                    table.insert_unique(hash, e, |&e| {
                        let (eb, er) = entries[e as usize];
                        keys[eb as usize].hash(er as usize)
                    });
                }
            }
        }
    }
    for (e, &(b, row)) in entries.iter().enumerate() {
        if repeated[e] {
            duplicated[b as usize].push(row as usize);
        }
    }
    for rows in &mut duplicated {
        rows.sort_unstable();
    }
    Ok(duplicated)
}
