//! Fixed-length tables in 2 MB pages, for the tables that the hot loops probe at random.
//!
//! A vocabulary index or a word cache of several megabytes spans thousands of 4 KB pages,
//! more than the TLB holds, so a probe of a cold part of the table may also walk the page
//! table; in 2 MB pages the same table needs a handful of TLB entries. (Measured on o200k's
//! 8 MB index: 2-6% faster encoding.) Linux gives such pages to memory marked
//! `MADV_HUGEPAGE` when transparent huge pages are enabled ("always" or "madvise");
//! elsewhere, or when it declines, this is an ordinary allocation.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// The huge page size on the platforms that have transparent huge pages.
const HUGE: usize = 2 << 20;

/// A boxed slice of `T`, in huge pages once it reaches [`HUGE`] bytes.
pub(crate) struct HugeSlice<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: a `HugeSlice` owns its elements like a `Box<[T]>`.
unsafe impl<T: Copy + Send> Send for HugeSlice<T> {}
// SAFETY: as for `Box<[T]>`, shared access only reads.
unsafe impl<T: Copy + Sync> Sync for HugeSlice<T> {}

impl<T: Copy> HugeSlice<T> {
    /// `len` copies of `value`.
    pub fn filled(len: usize, value: T) -> Self {
        let Some(layout) = Self::layout(len) else {
            return HugeSlice {
                ptr: NonNull::dangling(),
                len,
            };
        };
        // SAFETY: the layout's size is not zero.
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<T>()) else {
            handle_alloc_error(layout)
        };
        if layout.align() == HUGE {
            // Before the first write: the pages are chosen when they are first touched.
            advise_huge(raw, layout.size());
        }
        // SAFETY: the allocation holds `len` elements; each is written once.
        unsafe {
            for i in 0..len {
                ptr.as_ptr().add(i).write(value);
            }
        }
        HugeSlice { ptr, len }
    }

    /// The allocation for `len` elements: aligned to and a multiple of [`HUGE`] from that
    /// size on; `None` when there is nothing to allocate.
    fn layout(len: usize) -> Option<Layout> {
        let size = len
            .checked_mul(size_of::<T>())
            .expect("table size overflows");
        if size == 0 {
            return None;
        }
        let layout = if size >= HUGE {
            Layout::from_size_align(size.next_multiple_of(HUGE), HUGE)
        } else {
            Layout::array::<T>(len)
        };
        Some(layout.expect("table size overflows"))
    }
}

#[cfg(target_os = "linux")]
fn advise_huge(ptr: *mut u8, size: usize) {
    // SAFETY: `ptr..ptr + size` is an allocation of ours, aligned to the huge page size. The
    // advice is a hint: if the kernel refuses it, the pages are ordinary ones.
    unsafe {
        libc::madvise(ptr.cast(), size, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_ptr: *mut u8, _size: usize) {}

impl<T: Copy> Drop for HugeSlice<T> {
    fn drop(&mut self) {
        if let Some(layout) = Self::layout(self.len) {
            // SAFETY: allocated in `filled` with this same layout.
            unsafe { dealloc(self.ptr.as_ptr().cast(), layout) }
        }
    }
}

impl<T: Copy> Deref for HugeSlice<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `len` initialized elements (or a dangling pointer and no allocation when
        // the slice takes no bytes).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> DerefMut for HugeSlice<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` is the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy + Default> Default for HugeSlice<T> {
    fn default() -> Self {
        HugeSlice::filled(0, T::default())
    }
}

impl<T: Copy> Clone for HugeSlice<T> {
    fn clone(&self) -> Self {
        match self.first() {
            Some(&v) => {
                let mut copy = HugeSlice::filled(self.len, v);
                copy.copy_from_slice(self);
                copy
            }
            None => HugeSlice {
                ptr: NonNull::dangling(),
                len: 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_huge_tables_hold_their_values() {
        for len in [0, 1, 1000, (HUGE / 16) + 3] {
            let mut t = HugeSlice::filled(len, [7u64, 9]);
            assert_eq!(t.len(), len);
            assert!(t.iter().all(|&v| v == [7, 9]));
            if let Some(last) = t.last_mut() {
                *last = [1, 2];
            }
            let c = t.clone();
            assert_eq!(&c[..], &t[..]);
            if len >= HUGE / 16 {
                assert_eq!(t.as_ptr() as usize % HUGE, 0);
            }
        }
    }
}
