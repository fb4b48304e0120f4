//! The system allocator, counting live heap bytes and their peak, for the heap figures of
//! `examples/perf.rs` and `benches/maintenance.rs` (each includes this file with a
//! `#[path]` module and installs the allocator as its global allocator).
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting live heap bytes and their peak.
pub struct CountingAlloc;

pub static HEAP_NOW: AtomicUsize = AtomicUsize::new(0);
pub static HEAP_PEAK: AtomicUsize = AtomicUsize::new(0);

fn heap_grew(bytes: usize) {
    let now = HEAP_NOW.fetch_add(bytes, Ordering::Relaxed) + bytes;
    HEAP_PEAK.fetch_max(now, Ordering::Relaxed);
}

fn heap_shrank(bytes: usize) {
    HEAP_NOW.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with its arguments unchanged and returns what
// `System` returned, so `System`'s guarantees hold; the counting only touches atomics and
// never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwards to System unchanged; the caller upholds `alloc`'s contract
        // (non-zero size).
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            heap_grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwards to System unchanged; the caller upholds `alloc_zeroed`'s
        // contract (non-zero size).
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            heap_grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwards to System unchanged; the caller guarantees `ptr` was allocated
        // by this allocator (hence by System) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        heap_shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwards to System unchanged; the caller guarantees `ptr` was allocated
        // by this allocator (hence by System) with `layout`, and a valid `new_size`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            // On failure the old block stays allocated: nothing changes.
            if new_size >= layout.size() {
                heap_grew(new_size - layout.size());
            } else {
                heap_shrank(layout.size() - new_size);
            }
        }
        new
    }
}
