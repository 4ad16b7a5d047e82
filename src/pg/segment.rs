//! Dynamic shared memory segments: how a worker hands a job to an executor and the executor
//! hands back the reply. A segment is written once by the process that creates it and read by
//! the other side by its handle.

use pgrx::pg_sys;

/// A segment this process created, mapped until it is dropped (not tied to a transaction).
pub struct Segment {
    raw: *mut pg_sys::dsm_segment,
    len: usize,
}

impl Segment {
    /// A new segment holding `bytes`.
    pub fn create(bytes: &[u8]) -> Segment {
        // SAFETY: dsm_create raises an ERROR rather than return NULL (no flags); the copy stays
        // within the segment's `bytes.len()` (at least one byte) bytes.
        unsafe {
            let raw = pg_sys::dsm_create(bytes.len().max(1), 0);
            pg_sys::dsm_pin_mapping(raw);
            let address = pg_sys::dsm_segment_address(raw) as *mut u8;
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), address, bytes.len());
            Segment {
                raw,
                len: bytes.len(),
            }
        }
    }

    /// What the other side attaches it by.
    pub fn handle(&self) -> u32 {
        // SAFETY: a segment this process created and still has mapped.
        unsafe { pg_sys::dsm_segment_handle(self.raw) }
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: mapped since create, detached only here.
        unsafe { pg_sys::dsm_detach(self.raw) };
    }
}

/// The first `len` bytes of the segment `handle`; `None` if it is gone.
pub fn read(handle: u32, len: usize) -> Option<Vec<u8>> {
    // SAFETY: the creator keeps the segment attached until we are done with it and wrote `len`
    // bytes into it; a vanished segment attaches as NULL.
    unsafe {
        let segment = pg_sys::dsm_attach(handle);
        if segment.is_null() {
            return None;
        }
        let address = pg_sys::dsm_segment_address(segment) as *const u8;
        let bytes = std::slice::from_raw_parts(address, len).to_vec();
        pg_sys::dsm_detach(segment);
        Some(bytes)
    }
}
