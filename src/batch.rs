//! `Batcher`: turns many concurrent single requests into few set-based ones.
//!
//! Each caller submits one item and awaits its own result; a task on the current
//! thread takes whatever has queued up and hands it to one `flush` call. It never
//! waits to fill a batch: an item submitted while nothing is in flight is flushed
//! alone at once (no added latency when idle), and items that arrive while
//! `concurrency` flushes run wait for the next one together. Under load the batches
//! grow by themselves, so the work per item (statements, round trips) shrinks as
//! the load rises.

use std::future::Future;
use std::rc::Rc;

use tokio::sync::{mpsc, oneshot, Semaphore};

/// A handle to submit items; cheap to clone. The task stops when the last handle is
/// dropped.
pub struct Batcher<T, R> {
    tx: mpsc::UnboundedSender<(T, oneshot::Sender<R>)>,
}

impl<T, R> Clone for Batcher<T, R> {
    fn clone(&self) -> Self {
        Batcher { tx: self.tx.clone() }
    }
}

impl<T: 'static, R: 'static> Batcher<T, R> {
    /// Starts the batching task on the current thread's runtime (an actix Arbiter).
    ///
    /// `flush` receives up to `max` items and must return one result per item, in
    /// order; at most `concurrency` flushes run at once.
    ///
    /// # Panics
    /// Outside a tokio `LocalSet` (any actix Arbiter is one).
    pub fn start<F, Fut>(max: usize, concurrency: usize, flush: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + 'static,
        Fut: Future<Output = Vec<R>> + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<(T, oneshot::Sender<R>)>();
        let permits = std::sync::Arc::new(Semaphore::new(concurrency.max(1)));
        let flush = Rc::new(flush);
        tokio::task::spawn_local(async move {
            loop {
                // Wait for a free flush first: what arrives meanwhile joins the batch.
                let Ok(permit) = permits.clone().acquire_owned().await else { return };
                let Some(first) = rx.recv().await else { return };
                let mut batch = vec![first];
                while batch.len() < max.max(1) {
                    match rx.try_recv() {
                        Ok(item) => batch.push(item),
                        Err(_) => break,
                    }
                }
                let flush = flush.clone();
                tokio::task::spawn_local(async move {
                    let (items, replies): (Vec<T>, Vec<_>) = batch.into_iter().unzip();
                    let results = flush(items).await;
                    for (reply, result) in replies.into_iter().zip(results) {
                        // The caller may have gone (shutdown); its answer is not needed.
                        let _ = reply.send(result);
                    }
                    drop(permit);
                });
            }
        });
        Batcher { tx }
    }

    /// Submits one item and waits for its result; `None` if the batching task is
    /// gone or the flush did not answer this item.
    pub async fn submit(&self, item: T) -> Option<R> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((item, reply)).ok()?;
        answer.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::time::Duration;

    use super::*;

    /// On paused time the clock moves only when every task waits on a timer: a
    /// batcher that waited to fill a batch would move it, one that flushes at once
    /// leaves it where it was. (A wall clock would also count a busy machine.)
    #[tokio::test(start_paused = true)]
    async fn a_lone_item_is_flushed_alone_and_at_once() {
        // `Batcher` spawns local tasks, as on an actix Arbiter.
        tokio::task::LocalSet::new()
            .run_until(async {
                let b = Batcher::start(10, 1, |items: Vec<u32>| async move { items.iter().map(|i| i * 2).collect() });
                let started = tokio::time::Instant::now();

                assert_eq!(b.submit(21).await, Some(42));

                assert_eq!(started.elapsed(), Duration::ZERO);
            })
            .await;
    }

    #[actix_rt::test]
    async fn items_arriving_during_a_flush_share_the_next_one() {
        let sizes = Rc::new(RefCell::new(Vec::new()));
        let seen = sizes.clone();
        let b = Batcher::start(4, 1, move |items: Vec<u32>| {
            seen.borrow_mut().push(items.len());
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                items.into_iter().map(|i| i + 1).collect::<Vec<_>>()
            }
        });
        let results = futures_util::future::join_all((0..9).map(|i| b.submit(i))).await;
        assert_eq!(results, (1..10).map(Some).collect::<Vec<_>>(), "each caller gets its own answer");
        // Nine callers at once: three flushes of at most four, not nine of one.
        let sizes = sizes.borrow();
        assert_eq!((sizes.len(), sizes.iter().sum::<usize>(), sizes.iter().max()), (3, 9, Some(&4)));
    }

    #[actix_rt::test]
    async fn a_flush_that_answers_too_few_leaves_the_rest_with_none() {
        let b = Batcher::start(8, 1, |_items: Vec<u32>| async move { Vec::<u32>::new() });
        assert_eq!(b.submit(1).await, None);
    }
}
