//! The queues of one limited priority level: our simpler version of upstream's fair-queuing
//! queue set (`staging/src/k8s.io/apiserver/pkg/util/flowcontrol/fairqueuing/queueset/queueset.go`)
//! and its shuffle sharding (`staging/src/k8s.io/apiserver/pkg/util/shufflesharding/shufflesharding.go`).
//!
//! - A level has `limit` seats; a request takes its width in seats (1, or more for a wide
//!   list: [`super::apf::width`], upstream's work estimator), at most `limit`.
//! - A request that finds enough seats free and nobody waiting runs at once. Otherwise its flow's hash
//!   deals a hand of `hand_size` of the `queues` queues (shuffle sharding) and the request joins
//!   the shortest queue of its hand; if that queue already holds `queue_length_limit` requests,
//!   or the level rejects rather than queues (`limitResponse.type: Reject`), it is refused.
//! - When seats free, the next queue in round-robin order that has a waiter gets them (its head
//!   request), once enough are free for its width: a wide request is not overtaken by narrow
//!   ones of other queues (upstream likewise dispatches only the queue its fair-queuing order
//!   picks). Upstream picks the queue with the smallest virtual finish time (fair queuing by
//!   estimated work); for requests of equal weight round-robin between non-empty queues gives
//!   each busy queue the same share, which is what keeps one flooding flow from starving the
//!   others of its level.
//! - A request waits at most the queue wait limit (the caller's timeout) and is then refused;
//!   a waiter that goes away (its client disconnected) leaves its queue.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::oneshot;

/// The numbers of one level (from its PriorityLevelConfiguration and the server's total).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Seats: requests executing at once.
    pub limit: usize,
    /// Queues (0: requests are refused rather than queued).
    pub queues: usize,
    /// Queues dealt to each flow.
    pub hand_size: usize,
    /// The most requests waiting in one queue.
    pub queue_length_limit: usize,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    width: usize,
    /// Sends the seats granted (the width, at most the level's seats at that time).
    grant: oneshot::Sender<usize>,
}

#[derive(Debug)]
struct State {
    params: Params,
    executing: usize,
    waiting: usize,
    queues: Vec<VecDeque<Waiter>>,
    /// The queue the next dispatch looks at first (round robin).
    next: usize,
    next_id: u64,
}

/// The queues and seats of one limited level. Shared (`Arc`) by the seats it grants.
#[derive(Debug)]
pub struct QueueSet {
    state: Mutex<State>,
}

/// A request's seats: it runs while they are held; dropping them frees them for the next
/// waiters.
#[derive(Debug)]
pub struct Seat {
    qs: Arc<QueueSet>,
    width: usize,
}

impl Seat {
    /// How many seats are held.
    pub fn width(&self) -> usize {
        self.width
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut st = self.qs.state.lock();
        st.executing = st.executing.saturating_sub(self.width);
        st.dispatch();
    }
}

/// What [`QueueSet::enqueue`] decided.
#[derive(Debug)]
pub enum Admission {
    /// Run now.
    Run(Seat),
    /// Wait in a queue for [`Ticket::wait`].
    Queued(Ticket),
    /// Refused (no queuing, or the chosen queue is full).
    Rejected,
}

/// A place in a queue.
#[derive(Debug)]
pub struct Ticket {
    qs: Arc<QueueSet>,
    id: u64,
    grant: Option<oneshot::Receiver<usize>>,
}

impl Ticket {
    /// Waits for a seat at most `limit`; `None` when the wait timed out (the request left its
    /// queue and is refused).
    pub async fn wait(mut self, limit: std::time::Duration) -> Option<Seat> {
        let rx = self.grant.as_mut()?;
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(width)) => {
                self.grant = None;
                Some(Seat {
                    qs: self.qs.clone(),
                    width,
                })
            }
            _ => None,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let Some(mut rx) = self.grant.take() else {
            return;
        };
        let mut st = self.qs.state.lock();
        if let Ok(width) = rx.try_recv() {
            // Granted as it gave up: free the seats for the next one.
            st.executing = st.executing.saturating_sub(width);
            st.dispatch();
            return;
        }
        let id = self.id;
        for q in &mut st.queues {
            if let Some(i) = q.iter().position(|w| w.id == id) {
                q.remove(i);
                st.waiting -= 1;
                return;
            }
        }
    }
}

impl State {
    /// Gives free seats to the heads of the non-empty queues, round robin; stops at a head
    /// wider than the seats free (it goes first once they are).
    fn dispatch(&mut self) {
        let n = self.queues.len();
        while self.executing < self.params.limit && self.waiting > 0 && n > 0 {
            let Some(q) = (0..n)
                .map(|k| (self.next + k) % n)
                .find(|&q| !self.queues[q].is_empty())
            else {
                return;
            };
            let width = self.queues[q]
                .front()
                .map_or(1, |w| w.width.min(self.params.limit));
            if self.executing + width > self.params.limit {
                return;
            }
            self.next = (q + 1) % n;
            let w = self.queues[q].pop_front().expect("a non-empty queue");
            self.waiting -= 1;
            if w.grant.send(width).is_ok() {
                self.executing += width;
            }
        }
    }
}

/// Deals `hand` distinct queue indices of `deck` from `hash` (shuffle sharding: each draw
/// takes the remainder by the cards left as the index among the cards not dealt yet).
pub fn deal(mut hash: u64, deck: usize, hand: usize) -> Vec<usize> {
    let hand = hand.min(deck);
    let mut dealt: Vec<usize> = Vec::with_capacity(hand);
    for left in (deck - hand + 1..=deck).rev() {
        let mut card = (hash % left as u64) as usize;
        hash /= left as u64;
        let mut sorted = dealt.clone();
        sorted.sort_unstable();
        for d in sorted {
            if d <= card {
                card += 1;
            }
        }
        dealt.push(card);
    }
    dealt
}

impl QueueSet {
    /// A queue set with `params`.
    pub fn new(params: Params) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                params,
                executing: 0,
                waiting: 0,
                queues: (0..params.queues).map(|_| VecDeque::new()).collect(),
                next: 0,
                next_id: 0,
            }),
        })
    }

    /// Takes new numbers (a changed PriorityLevelConfiguration, or a changed share of the
    /// total): waiters keep their order, spread over the new queues; more seats are handed out
    /// at once.
    pub fn reconfigure(&self, params: Params) {
        let mut st = self.state.lock();
        if st.params == params {
            return;
        }
        if st.queues.len() != params.queues {
            let old: Vec<Waiter> = st.queues.drain(..).flatten().collect();
            st.queues = (0..params.queues).map(|_| VecDeque::new()).collect();
            st.next = 0;
            if params.queues == 0 {
                st.waiting = 0;
            } else {
                for (i, w) in old.into_iter().enumerate() {
                    st.queues[i % params.queues].push_back(w);
                }
            }
        }
        st.params = params;
        st.dispatch();
    }

    /// The numbers in force.
    pub fn params(&self) -> Params {
        self.state.lock().params
    }

    /// `(executing, waiting)` right now.
    pub fn load(&self) -> (usize, usize) {
        let st = self.state.lock();
        (st.executing, st.waiting)
    }

    /// Admits a request of the flow whose hash is `flow` that takes `width` seats (at least 1,
    /// at most the level's seats): its seats, a place in a queue, or a refusal (see the module
    /// documentation).
    pub fn enqueue(self: &Arc<Self>, flow: u64, width: usize) -> Admission {
        let mut st = self.state.lock();
        let width = width.clamp(1, st.params.limit.max(1));
        if st.executing + width <= st.params.limit && st.waiting == 0 {
            st.executing += width;
            return Admission::Run(Seat {
                qs: self.clone(),
                width,
            });
        }
        if st.queues.is_empty() {
            return Admission::Rejected;
        }
        let hand = deal(flow, st.queues.len(), st.params.hand_size.max(1));
        let q = hand
            .into_iter()
            .min_by_key(|&q| st.queues[q].len())
            .expect("a hand has at least one queue");
        if st.queues[q].len() >= st.params.queue_length_limit {
            return Admission::Rejected;
        }
        let (tx, rx) = oneshot::channel();
        let id = st.next_id;
        st.next_id += 1;
        st.queues[q].push_back(Waiter {
            id,
            width,
            grant: tx,
        });
        st.waiting += 1;
        // A seat may be free with others waiting (they are being granted): hand it out.
        st.dispatch();
        Admission::Queued(Ticket {
            qs: self.clone(),
            id,
            grant: Some(rx),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn params(limit: usize, queues: usize, hand: usize, qll: usize) -> Params {
        Params {
            limit,
            queues,
            hand_size: hand,
            queue_length_limit: qll,
        }
    }

    #[test]
    fn deals_distinct_cards() {
        for h in [0u64, 1, 7, 12345, u64::MAX] {
            let mut hand = deal(h, 128, 6);
            assert_eq!(hand.len(), 6);
            assert!(hand.iter().all(|&c| c < 128));
            hand.sort_unstable();
            hand.dedup();
            assert_eq!(hand.len(), 6, "{h}");
        }
        assert_eq!(deal(5, 1, 6), vec![0]);
    }

    #[tokio::test]
    async fn a_flooding_flow_does_not_starve_another_flow() {
        let qs = QueueSet::new(params(1, 8, 2, 100));
        let Admission::Run(seat) = qs.enqueue(1, 1) else {
            panic!("the first request runs")
        };
        // Flow 1 floods: 150 requests, 100 fit its fullest-possible queues (2 × 100), the
        // shortest of its hand each time.
        let mut flood = Vec::new();
        for _ in 0..150 {
            if let Admission::Queued(t) = qs.enqueue(1, 1) {
                flood.push(t);
            }
        }
        assert_eq!(flood.len(), 150, "two queues of 100 hold them all");
        // Flow 2 (a hand of other queues) arrives last.
        let mut other = 2u64;
        while deal(other, 8, 2).iter().any(|q| deal(1, 8, 2).contains(q)) {
            other += 1;
        }
        let Admission::Queued(t) = qs.enqueue(other, 1) else {
            panic!("queued")
        };
        let waiter = tokio::spawn(t.wait(Duration::from_secs(30)));
        // Seats free one by one as flow 1's requests finish: flow 2 gets one within a round
        // of the three non-empty queues, not after the 150.
        drop(seat);
        let mut served = 0;
        for t in flood {
            tokio::task::yield_now().await;
            if waiter.is_finished() {
                break;
            }
            if let Some(s) = t.wait(Duration::from_millis(1)).await {
                served += 1;
                drop(s);
            }
        }
        assert!(served <= 2, "flow 2 waited behind {served} flood requests");
        assert!(waiter.await.unwrap().is_some());
    }

    #[test]
    fn a_full_queue_and_a_rejecting_level_refuse() {
        let qs = QueueSet::new(params(1, 1, 1, 2));
        let _seat = qs.enqueue(0, 1);
        let _a = qs.enqueue(0, 1);
        let _b = qs.enqueue(0, 1);
        assert!(matches!(qs.enqueue(0, 1), Admission::Rejected));
        let reject = QueueSet::new(params(1, 0, 0, 0));
        let _s = reject.enqueue(0, 1);
        assert!(matches!(reject.enqueue(0, 1), Admission::Rejected));
    }

    #[tokio::test]
    async fn a_timed_out_or_dropped_waiter_leaves_its_queue() {
        let qs = QueueSet::new(params(1, 4, 2, 10));
        let seat = qs.enqueue(0, 1);
        let Admission::Queued(t) = qs.enqueue(0, 1) else {
            panic!()
        };
        assert!(t.wait(Duration::from_millis(10)).await.is_none());
        assert_eq!(qs.load(), (1, 0));
        let Admission::Queued(t) = qs.enqueue(0, 1) else {
            panic!()
        };
        drop(t);
        assert_eq!(qs.load(), (1, 0));
        drop(seat);
        assert_eq!(qs.load(), (0, 0));
    }

    #[tokio::test]
    async fn a_wide_request_takes_its_width_and_waits_for_it() {
        let qs = QueueSet::new(params(3, 4, 1, 10));
        let Admission::Run(wide) = qs.enqueue(0, 2) else {
            panic!("two of three seats free")
        };
        assert_eq!(wide.width(), 2);
        let Admission::Run(narrow) = qs.enqueue(0, 1) else {
            panic!("the last seat")
        };
        assert_eq!(qs.load(), (3, 0));
        let Admission::Queued(t) = qs.enqueue(5, 2) else {
            panic!("queued")
        };
        drop(narrow);
        assert_eq!(qs.load(), (2, 1), "one free seat is not enough");
        drop(wide);
        let seat = t.wait(Duration::from_secs(5)).await.expect("granted");
        assert_eq!((seat.width(), qs.load()), (2, (2, 0)));
        drop(seat);
        let Admission::Run(all) = qs.enqueue(0, 100) else {
            panic!("runs")
        };
        assert_eq!(all.width(), 3, "at most the level's seats");
        drop(all);
        assert_eq!(qs.load(), (0, 0));
    }

    #[tokio::test]
    async fn more_seats_dispatch_the_waiters() {
        let qs = QueueSet::new(params(1, 4, 2, 10));
        let _seat = qs.enqueue(0, 1);
        let Admission::Queued(t) = qs.enqueue(0, 1) else {
            panic!()
        };
        qs.reconfigure(params(2, 2, 1, 10));
        assert!(t.wait(Duration::from_secs(5)).await.is_some());
        assert_eq!(qs.load(), (1, 0), "the granted seat is freed on drop");
    }
}
