//! A byte trie over a vocabulary, for longest-prefix matching.
//!
//! A double array: the child of the node at position `p` along byte `b` is at position
//! `base(p) + b`, and is that node's child when its `check` is `p`. A step is one load (the
//! unit holds `check`, the next `base` and the value together), where a trie of nodes and
//! edge lists waits on three (node, edge labels, target); Unigram's Viterbi walks the trie
//! from every character, and those loads were most of its time.
//! `longest_match` walks the input once: O(length of the match + one step), no hashing, no
//! allocation. Memory: 12 bytes per unit; o200k's 200k tokens take 422k units (5 MB), built
//! in about the time the old node-and-edge trie took (60-70 ms, most of it the sort).
//! Rust loop, MB/s cold: Unigram test model multi 44 -> 49, en 53 -> 57; BERT's
//! tokenizer.json (WordPiece's longest matches) en 75 -> 85, multi 46 -> 56.

const NONE: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Unit {
    /// Where this node's children start (child along `b` at `base + b`).
    base: u32,
    /// The parent's position, or NONE for a free unit (and the root).
    check: u32,
    value: u32,
}

const FREE: Unit = Unit {
    base: 0,
    check: NONE,
    value: NONE,
};

/// The free units while a [`Trie`] is built: a doubly linked list in position order, so that
/// a search for a base skips the units already taken. A unit that has failed as the first
/// child's place too often leaves the list (it stays free, and a later node's other children
/// may still take it): without that, the search would walk over the same few holes for every
/// node and the build would be quadratic.
struct FreeUnits {
    used: Vec<bool>,
    next: Vec<u32>,
    prev: Vec<u32>,
    listed: Vec<bool>,
    fails: Vec<u8>,
    head: u32,
    tail: u32,
}

/// Searches a unit may fail before it leaves the list.
const MAX_FAILS: u8 = 8;

impl FreeUnits {
    fn new(len: usize) -> Self {
        let mut f = FreeUnits {
            used: Vec::new(),
            next: Vec::new(),
            prev: Vec::new(),
            listed: Vec::new(),
            fails: Vec::new(),
            head: NONE,
            tail: NONE,
        };
        f.grow(len);
        f
    }

    fn len(&self) -> usize {
        self.used.len()
    }

    /// Adds units up to `len`, listed at the end.
    fn grow(&mut self, len: usize) {
        let old = self.len();
        self.used.resize(len, false);
        self.listed.resize(len, true);
        self.fails.resize(len, 0);
        self.next.resize(len, NONE);
        self.prev.resize(len, NONE);
        for p in old..len {
            self.prev[p] = self.tail;
            match self.tail {
                NONE => self.head = p as u32,
                t => self.next[t as usize] = p as u32,
            }
            self.tail = p as u32;
        }
    }

    fn unlink(&mut self, p: usize) {
        let (n, pr) = (self.next[p], self.prev[p]);
        match n {
            NONE => self.tail = pr,
            n => self.prev[n as usize] = pr,
        }
        match pr {
            NONE => self.head = n,
            pr => self.next[pr as usize] = n,
        }
        self.listed[p] = false;
    }

    fn take(&mut self, p: usize) {
        self.used[p] = true;
        if self.listed[p] {
            self.unlink(p);
        }
    }

    /// A base where every label of `labels` (the first being `first`, the smallest) lands on a
    /// free unit, with 256 units past it (grown as needed).
    fn place(&mut self, labels: impl Iterator<Item = usize> + Clone, first: usize) -> usize {
        let mut p = self.head;
        loop {
            if p == NONE {
                // nothing listed fits: go on from new units
                let old = self.len();
                self.grow(2 * old);
                p = old as u32;
            }
            let at = p as usize;
            if at >= first {
                let base = at - first;
                if base + 256 > self.len() {
                    self.grow((2 * self.len()).max(base + 256));
                }
                if labels.clone().all(|c| !self.used[base + c]) {
                    return base;
                }
            }
            p = self.next[at];
            self.fails[at] += 1;
            if self.fails[at] >= MAX_FAILS {
                self.unlink(at);
            }
        }
    }

    fn last_used(&self) -> usize {
        self.used.iter().rposition(|&u| u).unwrap_or(0)
    }
}

/// A trie from byte strings to `u32` values.
pub struct Trie {
    units: Vec<Unit>,
}

impl Trie {
    /// Builds the trie; a key given twice keeps its last value.
    ///
    /// The keys are sorted once; each node's children are the runs of equal bytes at its
    /// depth in its range of keys. A node's children are placed at the first base, from the
    /// first free unit on, where every one of them finds a free unit (most nodes have one or
    /// two children and take the first free units).
    pub fn new<'a>(keys: impl IntoIterator<Item = (&'a [u8], u32)>) -> Self {
        let mut keys: Vec<(&[u8], u32)> = keys.into_iter().collect();
        keys.reverse(); // so that the stable sort puts the last value of a key first
        keys.sort_by(|a, b| a.0.cmp(b.0));
        keys.dedup_by(|later, first| later.0 == first.0);
        let mut units = vec![FREE; 512];
        let mut free = FreeUnits::new(512);
        // the root
        free.take(0);
        // (range of keys, depth, the node's position)
        let mut stack = vec![(0, keys.len(), 0, 0usize)];
        let mut children: Vec<(usize, usize, u8)> = Vec::new();
        while let Some((lo, hi, depth, at)) = stack.pop() {
            let mut i = lo;
            if i < hi && keys[i].0.len() == depth {
                units[at].value = keys[i].1;
                i += 1;
            }
            children.clear();
            while i < hi {
                let b = keys[i].0[depth];
                let start = i;
                while i < hi && keys[i].0[depth] == b {
                    i += 1;
                }
                children.push((start, i, b));
            }
            let Some(&(_, _, first)) = children.first() else {
                continue;
            };
            let base = free.place(children.iter().map(|&(_, _, c)| c as usize), first as usize);
            if base + 256 > units.len() {
                units.resize(free.len(), FREE);
            }
            units[at].base = base as u32;
            for &(_, _, c) in &children {
                let child = base + c as usize;
                free.take(child);
                units[child].check = at as u32;
            }
            // depth-first: a walk down the trie touches nearby units
            for &(start, end, c) in children.iter().rev() {
                stack.push((start, end, depth + 1, base + c as usize));
            }
        }
        let last = free.last_used();
        // every step from a node reads within base + 255: keep that much past the last unit
        units.resize(last + 256, FREE);
        units.shrink_to_fit();
        Trie { units }
    }

    /// The root node.
    pub const ROOT: u32 = 0;

    /// The child of `node` along `b`.
    #[inline]
    pub fn step(&self, node: u32, b: u8) -> Option<u32> {
        let t = self.units[node as usize].base as usize + b as usize;
        let unit = self.units.get(t)?;
        (unit.check == node).then_some(t as u32)
    }

    /// The node reached from `node` along `bytes`.
    pub fn walk(&self, mut node: u32, bytes: &[u8]) -> Option<u32> {
        for &b in bytes {
            node = self.step(node, b)?;
        }
        Some(node)
    }

    /// The value stored at `node`.
    #[inline]
    pub fn value(&self, node: u32) -> Option<u32> {
        let v = self.units[node as usize].value;
        (v != NONE).then_some(v)
    }

    /// The longest key that `bytes` starts with (continuing from `node`): `(length, value)`.
    #[inline]
    pub fn longest_match(&self, mut node: u32, bytes: &[u8]) -> Option<(usize, u32)> {
        let mut best = None;
        for (i, &b) in bytes.iter().enumerate() {
            match self.step(node, b) {
                Some(next) => node = next,
                None => break,
            }
            if let Some(v) = self.value(node) {
                best = Some((i + 1, v));
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix() {
        let keys: Vec<(&[u8], u32)> =
            vec![(b"a", 1), (b"ab", 2), (b"abcd", 3), (b"##b", 4), (b"b", 5)];
        let t = Trie::new(keys);
        assert_eq!(t.longest_match(Trie::ROOT, b"abcx"), Some((2, 2)));
        assert_eq!(t.longest_match(Trie::ROOT, b"abcde"), Some((4, 3)));
        assert_eq!(t.longest_match(Trie::ROOT, b"x"), None);
        let cont = t.walk(Trie::ROOT, b"##").unwrap();
        assert_eq!(t.longest_match(cont, b"bb"), Some((1, 4)));
        assert_eq!(t.value(t.walk(Trie::ROOT, b"b").unwrap()), Some(5));
    }

    #[test]
    fn repeated_keys_keep_the_last_value_and_the_empty_key_works() {
        let t = Trie::new(vec![(&b"ab"[..], 1), (b"", 7), (b"ab", 2), (b"a", 3)]);
        assert_eq!(t.value(Trie::ROOT), Some(7));
        assert_eq!(t.value(t.walk(Trie::ROOT, b"ab").unwrap()), Some(2));
        assert_eq!(t.value(t.walk(Trie::ROOT, b"a").unwrap()), Some(3));
        assert_eq!(t.walk(Trie::ROOT, b"b"), None);
    }

    proptest::proptest! {
        /// Against a map: each prefix of a probe is found exactly when it is a key, with its
        /// value, and the longest match is the longest such prefix.
        #[test]
        fn matches_a_map(
            keys in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(vec![0u8, 1, 2, b'a', 0x80, 0xff]), 0..6),
                0..60,
            ),
            probes in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(vec![0u8, 1, 2, b'a', 0x80, 0xff]), 0..8),
                1..20,
            ),
        ) {
            let t = Trie::new(keys.iter().enumerate().map(|(i, k)| (k.as_slice(), i as u32)));
            let map: std::collections::HashMap<&[u8], u32> =
                keys.iter().enumerate().map(|(i, k)| (k.as_slice(), i as u32)).collect();
            for p in probes.iter().chain(&keys) {
                let mut longest = None;
                for n in 0..=p.len() {
                    let found = t.walk(Trie::ROOT, &p[..n]).and_then(|node| t.value(node));
                    proptest::prop_assert_eq!(found, map.get(&p[..n]).copied());
                    if n > 0 && found.is_some() {
                        longest = found.map(|v| (n, v));
                    }
                }
                proptest::prop_assert_eq!(t.longest_match(Trie::ROOT, p), longest);
            }
        }
    }

    #[test]
    fn dense_nodes() {
        let keys: Vec<Vec<u8>> = (0u8..=255).map(|b| vec![b, b]).collect();
        let t = Trie::new(
            keys.iter()
                .enumerate()
                .map(|(i, k)| (k.as_slice(), i as u32)),
        );
        for b in 0u8..=255 {
            assert_eq!(t.longest_match(Trie::ROOT, &[b, b, 0]), Some((2, b as u32)));
            assert_eq!(t.longest_match(Trie::ROOT, &[b]), None);
        }
    }
}
