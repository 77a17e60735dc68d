//! Making, reading and replacing the parameters that growth and the optimiser rewrite.

use burn::module::{Param, ParamId};
use burn::tensor::Tensor;

/// A fresh trainable parameter holding `value`. On a device without autodiff it does not
/// track gradients yet; [`Module::train`](burn::module::Module::train) makes it (as it does
/// burn's own parameters).
pub(crate) fn trainable<const D: usize>(value: Tensor<D>) -> Param<Tensor<D>> {
    Param::initialized(ParamId::new(), value.detach()).set_require_grad(true)
}

/// Non-trainable state holding `value`, under a fresh id.
pub(crate) fn state<const D: usize>(value: Tensor<D>) -> Param<Tensor<D>> {
    Param::initialized(ParamId::new(), value.detach()).set_require_grad(false)
}

/// The parameter's value, detached from any autodiff graph.
pub(crate) fn value<const D: usize>(param: &Param<Tensor<D>>) -> Tensor<D> {
    param.val().detach()
}

/// The parameter with its value replaced by `update(value)`, computed without autodiff and
/// lifted back to the parameter's device with its gradient setting, under the same id.
pub(crate) fn updated<const D: usize>(
    param: Param<Tensor<D>>,
    update: impl FnOnce(Tensor<D>) -> Tensor<D>,
) -> Param<Tensor<D>> {
    param.map(|value| {
        let autodiff = value.is_autodiff();
        let require_grad = value.is_require_grad();
        let value = update(value.inner());
        match (autodiff, require_grad) {
            (true, true) => value.autodiff().require_grad(),
            (true, false) => value.autodiff(),
            _ => value,
        }
    })
}

/// The tensor's entries on the host, row-major, in `f64`.
pub(crate) fn host_values<const D: usize>(tensor: &Tensor<D>) -> Vec<f64> {
    tensor
        .to_data()
        .convert::<f64>()
        .try_to_vec::<f64>()
        .expect("float tensor data converts to f64")
}
