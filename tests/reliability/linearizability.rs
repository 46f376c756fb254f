//! A linearizability checker: the Wing–Gong search as Porcupine does it (Lowe's "Testing for
//! linearizability", 2017): the history as a doubly linked list of call and return entries in
//! time order; the search repeatedly linearizes a pending call whose step is legal in the model
//! (lifting the call and its return out of the list), backtracks when it reaches a return whose
//! call is not linearized yet, and remembers every (linearized set, state) pair it has been in,
//! so no configuration is explored twice. Histories are checked one partition at a time (one
//! key: an object is a register, and linearizability is compositional).
//!
//! An operation without a return (its outcome unknown) may take effect at any point after its
//! call, or never: it returns at the end of time, after every other entry.

use std::collections::HashSet;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A sequential specification.
pub trait Model {
    /// The state (hashable: the search memoizes it).
    type State: Clone + Eq + Hash + std::fmt::Debug;
    /// An operation's input.
    type Input: std::fmt::Debug;
    /// An operation's output.
    type Output: std::fmt::Debug;
    /// The initial state.
    fn init(&self) -> Self::State;
    /// The state after applying `input` in `state` if that gives `output`, else `None`.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: &Self::Output,
    ) -> Option<Self::State>;
}

/// One operation of a history.
#[derive(Debug, Clone)]
pub struct Op<I, O> {
    /// The client that issued it (for messages).
    pub client: usize,
    /// Invocation time.
    pub call: u64,
    /// Return time; `None`: unknown outcome (returns after everything).
    pub ret: Option<u64>,
    /// Input.
    pub input: I,
    /// Output.
    pub output: O,
}

/// The verdict on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A linearization exists.
    Ok,
    /// None exists; the message names the operations the longest attempt could not place.
    Illegal(String),
    /// The search ran out of its time budget.
    Unknown,
}

/// The verdicts of a partitioned history.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Partitions (keys) checked.
    pub partitions: usize,
    /// Operations checked.
    pub operations: usize,
    /// Partitions that are not linearizable, with why.
    pub illegal: Vec<(String, String)>,
    /// Partitions whose search ran out of time.
    pub unknown: Vec<String>,
    /// Time the search took.
    pub elapsed: Duration,
}

impl Report {
    /// Linearizable, every partition decided.
    pub fn ok(&self) -> bool {
        self.illegal.is_empty() && self.unknown.is_empty()
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    op: usize,
    is_call: bool,
    /// For a call: its return's node.
    matching: usize,
    prev: usize,
    next: usize,
}

const HEAD: usize = 0;
const NIL: usize = usize::MAX;

/// A fixed-size bit set (the linearized operations).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Self(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// Builds the entry list (node 0 is the head sentinel) in time order, calls before returns at
/// equal times (the more permissive reading: the operations overlap).
fn entries<I, O>(ops: &[Op<I, O>]) -> Vec<Entry> {
    let mut ev: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * ops.len());
    for (i, o) in ops.iter().enumerate() {
        ev.push((o.call, true, i));
        ev.push((o.ret.unwrap_or(u64::MAX), false, i));
    }
    // Calls (true) sort before returns (false) at the same time.
    ev.sort_by_key(|&(t, is_call, i)| (t, !is_call, i));
    let mut nodes = vec![Entry {
        op: NIL,
        is_call: false,
        matching: NIL,
        prev: NIL,
        next: NIL,
    }];
    let mut ret_node = vec![NIL; ops.len()];
    for (_, is_call, op) in &ev {
        let idx = nodes.len();
        nodes.push(Entry {
            op: *op,
            is_call: *is_call,
            matching: NIL,
            prev: idx - 1,
            next: NIL,
        });
        nodes[idx - 1].next = idx;
        if !is_call {
            ret_node[*op] = idx;
        }
    }
    for n in nodes.iter_mut().skip(1) {
        if n.is_call {
            n.matching = ret_node[n.op];
        }
    }
    nodes
}

fn unlink(nodes: &mut [Entry], x: usize) {
    let (p, n) = (nodes[x].prev, nodes[x].next);
    nodes[p].next = n;
    if n != NIL {
        nodes[n].prev = p;
    }
}

fn relink(nodes: &mut [Entry], x: usize) {
    let (p, n) = (nodes[x].prev, nodes[x].next);
    nodes[p].next = x;
    if n != NIL {
        nodes[n].prev = x;
    }
}

/// Checks one partition within `deadline`.
pub fn check<M: Model>(model: &M, ops: &[Op<M::Input, M::Output>], deadline: Instant) -> Verdict {
    let mut nodes = entries(ops);
    let mut linearized = Bits::new(ops.len());
    let mut state = model.init();
    let mut seen: HashSet<(Bits, M::State)> = HashSet::new();
    // (call node lifted, state before it)
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut deepest = (0usize, NIL);
    let mut entry = nodes[HEAD].next;
    let mut steps: u64 = 0;
    while nodes[HEAD].next != NIL {
        steps += 1;
        if steps % 4096 == 0 && Instant::now() > deadline {
            return Verdict::Unknown;
        }
        let e = nodes[entry];
        if e.is_call {
            let op = &ops[e.op];
            if let Some(next) = model.step(&state, &op.input, &op.output) {
                let mut lin = linearized.clone();
                lin.set(e.op);
                if seen.insert((lin.clone(), next.clone())) {
                    stack.push((entry, std::mem::replace(&mut state, next)));
                    linearized = lin;
                    unlink(&mut nodes, entry);
                    unlink(&mut nodes, e.matching);
                    entry = nodes[HEAD].next;
                    continue;
                }
            }
            entry = e.next;
        } else {
            // A return whose call is not linearized: undo the last choice.
            if stack.len() >= deepest.0 {
                deepest = (stack.len(), e.op);
            }
            let Some((call, prev)) = stack.pop() else {
                let (_, blocked) = deepest;
                let o = &ops[blocked];
                return Verdict::Illegal(format!(
                    "after {} linearized operations, no order places client {}'s {:?} -> {:?} \
                     (called at {} ns, returned at {:?} ns) in state {:?}",
                    deepest.0,
                    o.client,
                    o.input,
                    o.output,
                    o.call,
                    o.ret,
                    state_at(model, ops, blocked)
                ));
            };
            let c = nodes[call];
            relink(&mut nodes, c.matching);
            relink(&mut nodes, call);
            linearized.clear(c.op);
            state = prev;
            entry = c.next;
        }
    }
    Verdict::Ok
}

/// For messages: the state a sequential run of the operations that returned before `op` was
/// called would reach (best effort, ignoring illegal steps).
fn state_at<M: Model>(model: &M, ops: &[Op<M::Input, M::Output>], op: usize) -> M::State {
    let mut before: Vec<&Op<M::Input, M::Output>> = ops
        .iter()
        .filter(|o| o.ret.is_some_and(|r| r < ops[op].call))
        .collect();
    before.sort_by_key(|o| o.ret);
    let mut s = model.init();
    for o in before {
        if let Some(n) = model.step(&s, &o.input, &o.output) {
            s = n;
        }
    }
    s
}

/// The operations of one partition of a model's history.
pub type Partition<M> = (String, Vec<Op<<M as Model>::Input, <M as Model>::Output>>);

/// Checks each partition (key, operations) with a shared time `budget`.
pub fn check_partitioned<M: Model>(model: &M, parts: Vec<Partition<M>>, budget: Duration) -> Report
where
    M::Input: Clone,
    M::Output: Clone,
{
    let start = Instant::now();
    let deadline = start + budget;
    let mut r = Report {
        partitions: parts.len(),
        ..Default::default()
    };
    for (key, ops) in parts {
        r.operations += ops.len();
        match check(model, &ops, deadline) {
            Verdict::Ok => {}
            Verdict::Illegal(why) => {
                let why = match shortest_illegal_prefix(model, &ops, deadline) {
                    Some(last) => format!("{why}; shortest illegal prefix ends with {last}"),
                    None => why,
                };
                r.illegal.push((key, why))
            }
            Verdict::Unknown => r.unknown.push(key),
        }
    }
    r.elapsed = start.elapsed();
    r
}

/// For messages: the operations (in call order) of the shortest illegal prefix by call time,
/// its last eight shown — usually the anomaly and what it contradicts.
fn shortest_illegal_prefix<M: Model>(
    model: &M,
    ops: &[Op<M::Input, M::Output>],
    deadline: Instant,
) -> Option<String>
where
    M::Input: Clone,
    M::Output: Clone,
{
    let mut sorted = ops.to_vec();
    sorted.sort_by_key(|o| o.call);
    let (mut lo, mut hi) = (0, sorted.len());
    while lo + 1 < hi {
        let mid = (lo + hi) / 2;
        match check(model, &sorted[..mid], deadline) {
            Verdict::Illegal(_) => hi = mid,
            Verdict::Ok => lo = mid,
            Verdict::Unknown => return None,
        }
    }
    let shown: Vec<String> = sorted[hi.saturating_sub(8)..hi]
        .iter()
        .map(|o| {
            format!(
                "client {} [{}..{:?}] {:?} -> {:?}",
                o.client, o.call, o.ret, o.input, o.output
            )
        })
        .collect();
    Some(format!("operation {hi}:\n    {}", shown.join("\n    ")))
}
