//! `LoadShedLayer`: the in-flight cap its services share, and the pushback they answer with.

use super::LoadShed;
use std::{
    sync::{atomic::AtomicUsize, Arc},
    time::Duration,
};
use tower_layer::Layer;

/// Wraps a service in [`LoadShed`]; every service it makes counts into one in-flight total.
#[derive(Debug, Clone)]
pub struct LoadShedLayer {
    state: Arc<State>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) max_in_flight: usize,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) pushback: Duration,
}

impl LoadShedLayer {
    /// Sheds calls beyond `max_in_flight` running at once (across every connection), and calls
    /// that find the service behind not ready; a shed call carries a pushback of 100 ms.
    pub fn new(max_in_flight: usize) -> LoadShedLayer {
        LoadShedLayer {
            state: Arc::new(State {
                max_in_flight,
                in_flight: AtomicUsize::new(0),
                pushback: Duration::from_millis(100),
            }),
        }
    }

    /// Sets the pushback a shed call carries: when the client should try again.
    pub fn pushback(self, pushback: Duration) -> LoadShedLayer {
        LoadShedLayer {
            state: Arc::new(State {
                max_in_flight: self.state.max_in_flight,
                in_flight: AtomicUsize::new(0),
                pushback,
            }),
        }
    }

    /// Calls running now.
    pub fn in_flight(&self) -> usize {
        self.state
            .in_flight
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl<S> Layer<S> for LoadShedLayer {
    type Service = LoadShed<S>;

    fn layer(&self, inner: S) -> LoadShed<S> {
        LoadShed {
            inner,
            state: Arc::clone(&self.state),
            ready: false,
        }
    }
}
