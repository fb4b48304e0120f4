//! The one wake-up primitive: a change counter with a list of [`Waker`]s. Appends and
//! flushes bump a topic's counter; a tailing consumer, a producer's delivery handle or a
//! wait for durability registers a waker and sleeps. A blocking caller's waker unparks its
//! thread ([`Sleeper`]); an async caller's is its task's, so no runtime thread ever blocks on
//! a condition variable. A waiter on several counters (a consumer of several topics)
//! registers the same waker with each.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
#[cfg(feature = "async")]
use std::task::{Context, Poll};
use std::task::{Wake, Waker};
use std::time::Instant;

use parking_lot::Mutex;

/// A change counter and the wakers of those waiting for it to change. Writers bump the
/// counter and wake only when someone waits, so a change nobody waits for costs two atomic
/// operations.
#[derive(Debug, Default)]
pub(crate) struct Notify {
    seq: AtomicU64,
    /// Registered wakers (slots of `wakers` that are `Some`).
    waiters: AtomicUsize,
    wakers: Mutex<Slots>,
}

/// Registered wakers; a freed slot is reused by the next registration.
#[derive(Debug, Default)]
struct Slots {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl Notify {
    /// Something changed: wake every registered waker.
    pub(crate) fn notify(&self) {
        // SeqCst pairs with `register`: either the waiter reads the new count after it
        // registered, or this sees the registration and wakes it.
        self.seq.fetch_add(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let slots = self.wakers.lock();
            for w in slots.slots.iter().flatten() {
                w.wake_by_ref();
            }
        }
    }

    /// The change counter: read it before checking for data, then wait while it is unchanged.
    pub(crate) fn seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Registers `waker` (woken by every later `notify` until unregistered); returns its key.
    fn register(&self, waker: &Waker) -> usize {
        let mut s = self.wakers.lock();
        let key = match s.free.pop() {
            Some(k) => {
                s.slots[k] = Some(waker.clone());
                k
            }
            None => {
                s.slots.push(Some(waker.clone()));
                s.slots.len() - 1
            }
        };
        self.waiters.fetch_add(1, Ordering::SeqCst);
        key
    }

    #[cfg(feature = "async")]
    /// Replaces the waker registered under `key` when it would wake another task.
    fn update(&self, key: usize, waker: &Waker) {
        let mut s = self.wakers.lock();
        if let Some(slot) = s.slots.get_mut(key) {
            if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
                *slot = Some(waker.clone());
            }
        }
    }

    fn unregister(&self, key: usize) {
        let mut s = self.wakers.lock();
        if s.slots.get_mut(key).and_then(Option::take).is_some() {
            s.free.push(key);
            self.waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[cfg(feature = "async")]
    /// The body of a future waiting on this counter that keeps its own registration `key`:
    /// `Ready` once `ready()`, else `cx`'s waker is registered (or updated) and `Pending`.
    /// The future calls [`Notify::forget`] with its key when dropped.
    pub(crate) fn poll_until(
        &self,
        key: &mut Option<usize>,
        cx: &mut Context<'_>,
        ready: impl Fn() -> bool,
    ) -> Poll<()> {
        if ready() {
            return Poll::Ready(());
        }
        match *key {
            Some(k) => self.update(k, cx.waker()),
            None => *key = Some(self.register(cx.waker())),
        }
        // Registered before this second look: a change after it wakes the task.
        if ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Removes a future's registration (see [`Notify::poll_until`]).
    pub(crate) fn forget(&self, key: Option<usize>) {
        if let Some(k) = key {
            self.unregister(k);
        }
    }

    #[cfg(feature = "async")]
    /// A future that is ready once the counter differs from `seen`.
    pub(crate) fn changed(&self, seen: u64) -> Changed<'_> {
        Changed {
            notify: self,
            seen,
            key: None,
        }
    }
}

/// Wakes a thread parked in [`Sleeper::sleep_until`].
#[derive(Debug)]
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// A blocking waiter: a waker that unparks the current thread, which can watch several
/// [`Notify`]s (and anything else that holds its waker, such as a consumer's wakeup).
#[derive(Debug, Clone)]
pub(crate) struct Sleeper {
    waker: Waker,
}

impl Sleeper {
    /// A sleeper for the calling thread (only that thread may `sleep_until`).
    pub(crate) fn new() -> Self {
        Sleeper {
            waker: Waker::from(Arc::new(Unpark(std::thread::current()))),
        }
    }

    /// The waker that ends a sleep.
    pub(crate) fn waker(&self) -> &Waker {
        &self.waker
    }

    /// Registers this sleeper with `notify` until the returned guard drops. Register before
    /// checking the condition, so a change after the check wakes the sleep.
    pub(crate) fn watch<'a>(&self, notify: &'a Notify) -> Watch<'a> {
        Watch {
            notify,
            key: notify.register(&self.waker),
        }
    }

    /// Parks until `done()` or `deadline` (`None`: no deadline); returns `done()`'s last
    /// answer. Wake-ups that leave `done()` false park again.
    pub(crate) fn sleep_until(
        &self,
        deadline: Option<Instant>,
        mut done: impl FnMut() -> bool,
    ) -> bool {
        loop {
            if done() {
                return true;
            }
            match deadline {
                None => std::thread::park(),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return done();
                    }
                    std::thread::park_timeout(d - now);
                }
            }
        }
    }
}

/// A registration with a [`Notify`], removed on drop.
#[derive(Debug)]
pub(crate) struct Watch<'a> {
    notify: &'a Notify,
    key: usize,
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        self.notify.unregister(self.key);
    }
}

#[cfg(feature = "async")]
/// The future of [`Notify::changed`].
#[derive(Debug)]
pub(crate) struct Changed<'a> {
    notify: &'a Notify,
    seen: u64,
    key: Option<usize>,
}

#[cfg(feature = "async")]
impl std::future::Future for Changed<'_> {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Changed { notify, seen, key } = &mut *self;
        notify.poll_until(key, cx, || notify.seq() != *seen)
    }
}

#[cfg(feature = "async")]
impl Drop for Changed<'_> {
    fn drop(&mut self) {
        self.notify.forget(self.key.take());
    }
}

/// A value set once (an outcome), with a [`Notify`] to wait for it, blocking or async.
#[derive(Debug)]
pub(crate) struct Completion<T> {
    value: std::sync::OnceLock<T>,
    notify: Notify,
}

impl<T> Default for Completion<T> {
    fn default() -> Self {
        Completion {
            value: std::sync::OnceLock::new(),
            notify: Notify::default(),
        }
    }
}

impl<T> Completion<T> {
    /// Sets the value (a second set is ignored) and wakes every waiter.
    pub(crate) fn complete(&self, value: T) {
        if self.value.set(value).is_ok() {
            self.notify.notify();
        }
    }

    /// The value, once set.
    pub(crate) fn get(&self) -> Option<&T> {
        self.value.get()
    }

    /// Blocks until the value is set or `deadline` passes (`None`: no deadline).
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> Option<&T> {
        if self.value.get().is_none() {
            let sleeper = Sleeper::new();
            let _watch = sleeper.watch(&self.notify);
            sleeper.sleep_until(deadline, || self.value.get().is_some());
        }
        self.value.get()
    }

    #[cfg(feature = "async")]
    /// For a future waiting for the value: see [`Notify::poll_until`].
    pub(crate) fn poll_until_set(&self, key: &mut Option<usize>, cx: &mut Context<'_>) -> Poll<&T> {
        match self
            .notify
            .poll_until(key, cx, || self.value.get().is_some())
        {
            Poll::Ready(()) => Poll::Ready(self.value.get().expect("ready once set")),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Removes a future's registration.
    pub(crate) fn forget(&self, key: Option<usize>) {
        self.notify.forget(key);
    }
}

/// What ends an [`AnyChanged`] wait besides a counter (a consumer's wakeup).
#[cfg(feature = "async")]
pub(crate) trait Stop {
    fn stop(&self) -> bool;
}

/// A future ready once any of several counters differs from what was seen (a consumer of
/// several topics), or once `stop.stop()` is true (a wakeup).
#[cfg(feature = "async")]
pub(crate) struct AnyChanged<'a, F> {
    watched: Vec<(&'a Notify, u64, Option<usize>)>,
    stop: F,
}

#[cfg(feature = "async")]
impl<'a, F: Stop + Unpin> AnyChanged<'a, F> {
    /// Waits for any `(notify, seen)` pair's counter to move, or for `stop`.
    pub(crate) fn new(watched: impl IntoIterator<Item = (&'a Notify, u64)>, stop: F) -> Self {
        AnyChanged {
            watched: watched.into_iter().map(|(n, s)| (n, s, None)).collect(),
            stop,
        }
    }
}

#[cfg(feature = "async")]
impl<F: Stop + Unpin> std::future::Future for AnyChanged<'_, F> {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        // Every counter gets the waker before any is found changed, so none is missed.
        let mut ready = false;
        for (notify, seen, key) in &mut this.watched {
            ready |= notify
                .poll_until(key, cx, || notify.seq() != *seen)
                .is_ready();
        }
        if ready || this.stop.stop() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(feature = "async")]
impl<F> Drop for AnyChanged<'_, F> {
    fn drop(&mut self) {
        for (notify, _, key) in &mut self.watched {
            notify.forget(key.take());
        }
    }
}

#[cfg(feature = "async")]
/// A future ready once a shared [`Completion`] is set (to read it then).
#[derive(Debug)]
pub(crate) struct Completed<T> {
    completion: Arc<Completion<T>>,
    key: Option<usize>,
}

#[cfg(feature = "async")]
impl<T> Completed<T> {
    pub(crate) fn new(completion: Arc<Completion<T>>) -> Self {
        Completed {
            completion,
            key: None,
        }
    }
}

#[cfg(feature = "async")]
impl<T> std::future::Future for Completed<T> {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        this.completion
            .poll_until_set(&mut this.key, cx)
            .map(|_| ())
    }
}

#[cfg(feature = "async")]
impl<T> Drop for Completed<T> {
    fn drop(&mut self) {
        self.completion.forget(self.key.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::time::Duration;

    #[test]
    fn a_waiter_on_two_counters_wakes_for_either() {
        let a = Arc::new(Notify::default());
        let b = Arc::new(Notify::default());
        for which in 0..2 {
            let (sa, sb) = (a.seq(), b.seq());
            let sleeper = Sleeper::new();
            let _wa = sleeper.watch(&a);
            let _wb = sleeper.watch(&b);
            let other = Arc::clone(if which == 0 { &a } else { &b });
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                other.notify();
            });
            let changed = sleeper.sleep_until(None, || a.seq() != sa || b.seq() != sb);
            assert!(changed);
            t.join().unwrap();
        }
        assert_eq!(a.waiters.load(Ordering::SeqCst), 0, "guards unregistered");
        assert_eq!(b.waiters.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn wait_times_out_when_nothing_changes() {
        let n = Notify::default();
        let seen = n.seq();
        let wait = |deadline| {
            let sleeper = Sleeper::new();
            let _watch = sleeper.watch(&n);
            sleeper.sleep_until(Some(deadline), || n.seq() != seen)
        };
        let deadline = Instant::now() + Duration::from_millis(10);
        assert!(!wait(deadline));
        assert!(Instant::now() >= deadline);
        n.notify();
        assert!(wait(Instant::now()));
    }

    #[cfg(feature = "async")]
    #[test]
    fn changed_future_registers_and_unregisters() {
        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let n = Notify::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let mut fut = Box::pin(n.changed(n.seq()));
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(n.waiters.load(Ordering::SeqCst), 1);
        n.notify();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the task was woken");
        assert!(fut.as_mut().poll(&mut cx).is_ready());
        drop(fut);
        assert_eq!(n.waiters.load(Ordering::SeqCst), 0);
    }
}
