//! A batch as `AddCounts` requests that each fit the message limit.
//!
//! A batch whose request fits is sent whole, under its own id. A larger one is cut,
//! in its canonical order, into parts that each fit; part `i` goes under a derived
//! id: the same `seq`, and the writer `UUIDv5(namespace: the batch's writer,
//! name: "count-grpc part" ‖ seq ‖ i)` (big-endian). The cut and the ids depend only
//! on the batch and the limit, so a retried batch yields the same parts under the
//! same ids, and the server applies each part exactly once however often the batch
//! is sent.

use count_core::uuid::Uuid;
use count_core::{Batch, BatchId};
use prost::Message;

use crate::convert;
use crate::proto::count::v1 as pb;

/// The id of part `index` of the batch `id`.
pub(crate) fn part_id(id: BatchId, index: u32) -> BatchId {
    let mut name = Vec::with_capacity(32);
    name.extend_from_slice(b"count-grpc part");
    name.extend_from_slice(&id.seq.to_be_bytes());
    name.extend_from_slice(&index.to_be_bytes());
    BatchId {
        writer: Uuid::new_v5(&id.writer, &name),
        seq: id.seq,
    }
}

/// The requests that carry `batch`, each at most `max_bytes` encoded.
pub(crate) fn requests(batch: &Batch, max_bytes: usize) -> Vec<pb::AddCountsRequest> {
    let counts: Vec<pb::BucketCount> = batch
        .counts()
        .iter()
        .map(convert::wire_bucket_count)
        .collect();
    let whole = pb::AddCountsRequest {
        batch_id: Some(convert::wire_batch_id(batch.id())),
        counts,
    };
    if whole.encoded_len() <= max_bytes {
        return vec![whole];
    }
    // The largest part id is as long as any other: measure one.
    let id_len =
        prost::encoding::message::encoded_len(1, &convert::wire_batch_id(part_id(batch.id(), 0)));
    let mut parts: Vec<Vec<pb::BucketCount>> = Vec::new();
    let mut current = Vec::new();
    let mut current_len = id_len;
    for count in whole.counts {
        let len = prost::encoding::message::encoded_len(2, &count);
        if !current.is_empty() && current_len + len > max_bytes {
            parts.push(std::mem::take(&mut current));
            current_len = id_len;
        }
        current_len += len;
        current.push(count);
    }
    parts.push(current);
    parts
        .into_iter()
        .enumerate()
        .map(|(index, counts)| pb::AddCountsRequest {
            batch_id: Some(convert::wire_batch_id(part_id(
                batch.id(),
                u32::try_from(index).expect("fewer than 2^32 parts"),
            ))),
            counts,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use count_core::jiff::Timestamp;
    use count_core::{BucketCount, Endpoint, Method, Path};

    fn batch(paths: usize, path_len: usize, seq: u64) -> Batch {
        let at = Timestamp::from_second(1_700_000_040).unwrap();
        let counts = (0..paths)
            .map(|i| {
                let text = format!("/{i:06}{}", "p".repeat(path_len - 7));
                BucketCount::new(Endpoint::new(Method::Get, Path::new(&text).unwrap()), at, 1)
            })
            .collect();
        let id = BatchId {
            writer: Uuid::from_u128(0x1234),
            seq,
        };
        Batch::new(id, counts).unwrap()
    }

    #[test]
    fn a_batch_that_fits_goes_whole_under_its_own_id() {
        let b = batch(10, 100, 3);
        let requests = requests(&b, 4 << 20);
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].batch_id, Some(convert::wire_batch_id(b.id())));
        assert_eq!(requests[0].counts.len(), 10);
    }

    #[test]
    fn a_large_batch_is_cut_into_parts_that_fit_with_the_same_ids_every_time() {
        let b = batch(4200, 1000, 9);
        let limit = 4 << 20;
        let first = requests(&b, limit);
        assert!(first.len() >= 2, "{}", first.len());
        for part in &first {
            assert!(part.encoded_len() <= limit, "{}", part.encoded_len());
        }
        let total: usize = first.iter().map(|p| p.counts.len()).sum();
        assert_eq!(total, 4200);
        // Deterministic: the same parts and ids again; ids distinct, seq kept, never
        // the batch's own.
        assert_eq!(first, requests(&b, limit));
        let ids: std::collections::HashSet<_> = first
            .iter()
            .map(|p| p.batch_id.clone().unwrap().writer)
            .collect();
        assert_eq!(ids.len(), first.len());
        for part in &first {
            let id = part.batch_id.as_ref().unwrap();
            assert_eq!(id.seq, 9);
            assert_ne!(id.writer, b.id().writer.as_bytes().to_vec());
        }
        // Another batch of the same writer gets other part ids.
        let other = requests(&batch(4200, 1000, 10), limit);
        assert_ne!(other[0].batch_id, first[0].batch_id);
    }
}
