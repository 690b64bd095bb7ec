//! AdamW's moments in checkpoints, on any device. burn keeps them inside its `ModuleOptimizer`
//! and serializes them with a blocking read, and restores them onto the default device (wgpu):
//! neither works in a browser tab, which cannot block on a GPU read and, on the CPU backend,
//! may have no WebGPU at all. [`optimizer`] wraps burn's so that its per-parameter state
//! ([`Moments`]) can be read without blocking ([`to_bytes`]) and comes back on the CPU, from
//! where every step moves it to the gradient's device as it would any other state.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::pin::Pin;

use burn::optim::{
    AdamWState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer, RecordState,
    StateSink, StateSource,
};
use burn::tensor::{Device, Tensor};

/// The optimizer's moments serialized (burnpack), read from the device without blocking: a
/// browser cannot block on a GPU read, which burn's `into_bytes` does. So the moments are read
/// to the CPU first, awaited, and serialized from there: `to_record` is run once only to meet
/// every parameter's moments ([`Moments::state_flatten`] hands over a read of itself), then
/// `into_bytes` flattens the copies read.
pub(super) async fn to_bytes(optim: &ModuleOptimizer) -> Result<Vec<u8>, String> {
    let set = |state| SERIALIZING.with(|s| s.replace(state));
    set(Some(Serializing::Reading(Vec::new())));
    optim.to_record();
    let Some(Serializing::Reading(reads)) = set(None) else {
        unreachable!("only to_bytes serializes")
    };
    let mut copies = HashMap::new();
    for (prefix, read) in reads {
        copies.insert(prefix, read.await?);
    }
    set(Some(Serializing::Read(copies)));
    let bytes = optim.into_bytes();
    set(None);
    let bytes = bytes.map_err(|e| format!("serializing the optimizer failed: {e:?}"))?;
    Ok(bytes.to_vec())
}

/// One parameter's moments copied to the CPU, as a `Box<AdamWState<D>>` of its rank.
type HostCopy = Pin<Box<dyn Future<Output = Result<Box<dyn Any>, String>>>>;

/// What [`Moments::state_flatten`] does while [`to_bytes`] runs.
enum Serializing {
    /// Hand over a read of itself, keyed by its record prefix.
    Reading(Vec<(String, HostCopy)>),
    /// Flatten the copy read for its prefix.
    Read(HashMap<String, Box<dyn Any>>),
}

thread_local! {
    static SERIALIZING: RefCell<Option<Serializing>> = const { RefCell::new(None) };
}

async fn to_host<const D: usize>(state: AdamWState<D>) -> Result<Box<dyn Any>, String> {
    async fn host<const D: usize>(tensor: Tensor<D>) -> Result<Tensor<D>, String> {
        let data = tensor.into_data_async().await;
        let data = data.map_err(|e| format!("reading the optimizer's moments failed: {e}"))?;
        Ok(Tensor::from_data(data, &Device::flex()))
    }
    let moments = state.momentum;
    let max_moment_2 = match moments.max_moment_2 {
        Some(tensor) => Some(host(tensor).await?),
        None => None,
    };
    let momentum = AdaptiveMomentumState {
        time: moments.time,
        moment_1: host(moments.moment_1).await?,
        moment_2: host(moments.moment_2).await?,
        max_moment_2,
    };
    Ok(Box::new(AdamWState::new(momentum)))
}

/// burn's AdamW, with [`Moments`] for state. burn's `load_record` would make restored moments
/// on the default device, wgpu's, which a browser has only once WebGPU is initialised (and
/// never without WebGPU): a resumed CPU run in a tab would panic there.
#[derive(Clone)]
struct AdamW(burn::optim::AdamW);

/// burn's `adamw` as a whole-model optimizer whose moments go into checkpoints and come back
/// on any device.
pub(super) fn optimizer(adamw: burn::optim::AdamW) -> ModuleOptimizer {
    ModuleOptimizer::from(AdamW(adamw))
}

/// [`AdamW`]'s per-parameter state: AdamW's own, recorded under the same names.
#[derive(Clone)]
struct Moments<const D: usize>(AdamWState<D>);

impl<const D: usize> RecordState for Moments<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        SERIALIZING.with(|serializing| match &mut *serializing.borrow_mut() {
            Some(Serializing::Reading(reads)) => {
                reads.push((prefix.to_string(), Box::pin(to_host(self.0.clone()))));
            }
            Some(Serializing::Read(copies)) => {
                let copy = copies
                    .remove(prefix)
                    .map(|copy| copy.downcast::<AdamWState<D>>());
                let copy = copy.and_then(Result::ok).expect("read by to_bytes");
                copy.state_flatten(prefix, out);
            }
            None => self.0.state_flatten(prefix, out),
        })
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, _default: &Device) -> Option<Self> {
        AdamWState::state_unflatten(prefix, src, &Device::flex()).map(Moments)
    }
}

impl Optimizer for AdamW {
    type State<const D: usize> = Moments<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Moments<D>>,
    ) -> (Tensor<D>, Option<Moments<D>>) {
        let (tensor, state) = self.0.step(lr, tensor, grad, state.map(|s| s.0));
        (tensor, state.map(Moments))
    }

    fn to_device<const D: usize>(state: Moments<D>, device: &Device) -> Moments<D> {
        Moments(burn::optim::AdamW::to_device(state.0, device))
    }
}
