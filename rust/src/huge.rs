//! Fixed-length tables in 2 MB pages, for the tables that the hot loops probe at random.
//!
//! A vocabulary index or a word cache of several megabytes spans thousands of 4 KB pages,
//! more than the TLB holds, so a probe of a cold part of the table may also walk the page
//! table; in 2 MB pages the same table needs a handful of TLB entries. (Measured on o200k's
//! 8 MB index: 2-6% faster encoding.) Linux gives such pages to memory marked
//! `MADV_HUGEPAGE` when transparent huge pages are enabled ("always" or "madvise"), but only
//! to pages not touched yet: so on Linux these tables are mapped fresh from the kernel, not
//! taken from the allocator, which hands out reused (already touched, 4 KB-backed) memory
//! once the process has freed some, as it has after reading a corpus. Elsewhere, or when the
//! kernel declines, this is ordinary memory.

use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// The huge page size on the platforms that have transparent huge pages.
const HUGE: usize = 2 << 20;

/// A boxed slice of `T`, in huge pages once it reaches [`HUGE`] bytes.
pub(crate) struct HugeSlice<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
    /// Mapped by [`huge_alloc`] (else from the allocator, or nothing when it takes no bytes).
    mapped: bool,
}

// SAFETY: a `HugeSlice` owns its elements like a `Box<[T]>`.
unsafe impl<T: Copy + Send> Send for HugeSlice<T> {}
// SAFETY: as for `Box<[T]>`, shared access only reads.
unsafe impl<T: Copy + Sync> Sync for HugeSlice<T> {}

/// Plain data for which all-zero bytes are a valid value: the tables start zeroed, which
/// fresh pages from the kernel already are.
///
/// # Safety
/// All-zero bytes must be a valid value of the type (integers and structs or arrays of them).
pub(crate) unsafe trait Zeroable: Copy {}

// SAFETY: integers.
unsafe impl Zeroable for u64 {}
// SAFETY: integers.
unsafe impl Zeroable for u32 {}
// SAFETY: an array of integers.
unsafe impl Zeroable for [u64; 2] {}
// SAFETY: integers (the padding is not read).
unsafe impl Zeroable for (u64, u32) {}

impl<T: Zeroable> HugeSlice<T> {
    /// `len` zeroed elements, their pages in memory and written. Tables are read before they
    /// are written (a probe first), and a page whose first touch is a read maps the shared zero
    /// page: the first write to it then faults again and, while other threads of the process
    /// run, interrupts their CPUs to flush the old mapping (3% of a two-thread batch's first
    /// pass here). A huge table is populated by the kernel in one call; a smaller one comes
    /// zeroed from the allocator and has a byte of each page written.
    pub fn zeroed(len: usize) -> Self {
        let size = len
            .checked_mul(size_of::<T>())
            .expect("table size overflows");
        let mapped = if size >= HUGE { huge_alloc(size) } else { None };
        let ptr = match mapped {
            Some(raw) => raw.cast::<T>(),
            None if size == 0 => NonNull::dangling(),
            None => {
                let layout = Self::layout(len);
                // SAFETY: the layout's size is not zero.
                let raw = unsafe { alloc_zeroed(layout) };
                let raw = NonNull::new(raw).unwrap_or_else(|| handle_alloc_error(layout));
                // SAFETY: the allocation holds `size` bytes.
                unsafe { touch_pages(raw.as_ptr(), size) };
                raw.cast::<T>()
            }
        };
        HugeSlice {
            ptr,
            len,
            mapped: mapped.is_some(),
        }
    }
}

impl<T: Copy> HugeSlice<T> {
    /// The allocator's layout for `len` elements (when not mapped): aligned to and a multiple
    /// of [`HUGE`] from that size on, as a mapping would be.
    fn layout(len: usize) -> Layout {
        let layout = Layout::array::<T>(len).expect("table size overflows");
        if layout.size() < HUGE {
            return layout;
        }
        Layout::from_size_align(layout.size().next_multiple_of(HUGE), HUGE)
            .expect("table size overflows")
    }
}

/// Writes a zero byte to every 4 KB page of `ptr..ptr + size`, zeroed memory: so that each
/// page is faulted in writable, not as the shared zero page (see [`HugeSlice::zeroed`]). The
/// writes are volatile because a compiler may otherwise drop writes of zeros to memory known
/// zeroed, or turn an allocation followed by a zeroing into one zeroed allocation, which is
/// the lazy mapping this avoids.
///
/// # Safety
/// `ptr..ptr + size` must be writable memory that holds zeros.
unsafe fn touch_pages(ptr: *mut u8, size: usize) {
    for offset in (0..size).step_by(4096) {
        ptr.add(offset).write_volatile(0);
    }
}

/// Fresh memory for `size` bytes (at least [`HUGE`]), aligned to [`HUGE`] and marked for
/// huge pages before its first touch; `None` if the kernel gives none (the caller then takes
/// it from the allocator).
#[cfg(target_os = "linux")]
fn huge_alloc(size: usize) -> Option<NonNull<u8>> {
    let size = size.next_multiple_of(HUGE);
    let span = size.checked_add(HUGE)?;
    // SAFETY: a fresh private anonymous mapping; only the parts unmapped below are ours to
    // unmap, and what is left is `size` bytes at a multiple of HUGE.
    unsafe {
        let raw = libc::mmap(
            std::ptr::null_mut(),
            span,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if raw == libc::MAP_FAILED {
            return None;
        }
        let start = (raw as usize).next_multiple_of(HUGE);
        let head = start - raw as usize;
        if head > 0 {
            libc::munmap(raw, head);
        }
        let tail = span - head - size;
        if tail > 0 {
            libc::munmap((start + size) as *mut libc::c_void, tail);
        }
        // a hint: if the kernel refuses it, the pages are ordinary ones
        libc::madvise(start as *mut libc::c_void, size, libc::MADV_HUGEPAGE);
        // in memory and writable now (see `zeroed`); kernels before 5.14 refuse, and the
        // pages are written instead
        if libc::madvise(start as *mut libc::c_void, size, libc::MADV_POPULATE_WRITE) != 0 {
            touch_pages(start as *mut u8, size);
        }
        NonNull::new(start as *mut u8)
    }
}

#[cfg(not(target_os = "linux"))]
fn huge_alloc(_size: usize) -> Option<NonNull<u8>> {
    None
}

/// Asks for huge pages under the 2 MB-aligned part of `buf`'s capacity, for a buffer about
/// to be written for the first time (a hint; pages already touched stay as they are). Unlike
/// [`HugeSlice`] the buffer stays an ordinary `Vec`, so that it can become a numpy array.
pub(crate) fn advise_huge<T>(buf: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        let start = buf.as_ptr() as usize;
        let end = start + buf.capacity() * size_of::<T>();
        let (from, to) = (start.next_multiple_of(HUGE), end & !(HUGE - 1));
        if from < to {
            // SAFETY: advice on whole pages inside `buf`'s allocation; it changes no contents.
            unsafe { libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = buf;
}

#[cfg(target_os = "linux")]
fn huge_free(ptr: *mut u8, size: usize) {
    // SAFETY: `ptr..ptr + size` rounded up to HUGE is the mapping `huge_alloc` made.
    unsafe {
        libc::munmap(ptr.cast(), size.next_multiple_of(HUGE));
    }
}

#[cfg(not(target_os = "linux"))]
fn huge_free(_ptr: *mut u8, _size: usize) {
    unreachable!("huge_alloc maps nothing here")
}

impl<T: Copy> Drop for HugeSlice<T> {
    fn drop(&mut self) {
        let size = self.len * size_of::<T>();
        if self.mapped {
            huge_free(self.ptr.as_ptr().cast(), size);
        } else if size > 0 {
            // SAFETY: allocated in `zeroed` with this same layout.
            unsafe { dealloc(self.ptr.as_ptr().cast(), Self::layout(self.len)) }
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

impl<T: Zeroable> Default for HugeSlice<T> {
    fn default() -> Self {
        HugeSlice::zeroed(0)
    }
}

impl<T: Zeroable> Clone for HugeSlice<T> {
    fn clone(&self) -> Self {
        let mut copy = HugeSlice::zeroed(self.len);
        copy.copy_from_slice(self);
        copy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_huge_tables_hold_their_values() {
        for len in [0, 1, 1000, (HUGE / 16) + 3] {
            let mut t = HugeSlice::<[u64; 2]>::zeroed(len);
            assert_eq!(t.len(), len);
            assert!(t.iter().all(|&v| v == [0, 0]));
            if let Some(last) = t.last_mut() {
                *last = [1, 2];
            }
            let c = t.clone();
            assert_eq!(&c[..], &t[..]);
            if len >= HUGE / 16 {
                assert_eq!(t.as_ptr() as usize % HUGE, 0);
                // fresh from the kernel, so that its pages can be huge ones
                assert_eq!(t.mapped, cfg!(target_os = "linux"));
                assert_eq!(c.mapped, t.mapped);
            }
        }
    }
}
