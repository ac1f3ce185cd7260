use super::Operator;
use crate::ir::{Shape, Tensor};

/// Concatenation along channels.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Concat;

impl Operator for Concat {
    fn kind(&self) -> &'static str {
        "Concat"
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape, String> {
        let first = inputs.first().ok_or("Concat of nothing")?;
        if let Some(bad) = inputs.iter().find(|s| (s.h, s.w) != (first.h, first.w)) {
            return Err(format!(
                "Concat of different spatial sizes {first} and {bad}"
            ));
        }
        Ok(Shape::new(
            inputs.iter().map(|s| s.c).sum(),
            first.h,
            first.w,
        ))
    }
    fn describe(&self) -> String {
        "along channels".into()
    }
    fn reference(&self, inputs: &[&Tensor], output: Shape) -> Tensor {
        // CHW: concatenating channels is concatenating the buffers.
        Tensor::from_vec(
            output,
            inputs.iter().flat_map(|t| t.data.iter().copied()).collect(),
        )
    }
}
