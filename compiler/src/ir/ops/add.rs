use super::{expect_inputs, Clamp, Operator};
use crate::ir::{Shape, Tensor};

/// Elementwise sum of two activations of the same shape (a residual connection), optionally
/// followed by a fused clamp.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Add {
    pub activation: Option<Clamp>,
}

impl Operator for Add {
    fn kind(&self) -> &'static str {
        "Add"
    }
    fn output_shape(&self, inputs: &[Shape]) -> Result<Shape, String> {
        expect_inputs(inputs, 2, "Add")?;
        if inputs[0] != inputs[1] {
            return Err(format!(
                "Add of different shapes {} and {}",
                inputs[0], inputs[1]
            ));
        }
        Ok(inputs[0])
    }
    fn describe(&self) -> String {
        match self.activation {
            Some(a) => format!("a + b, then {}", a.name()),
            None => "a + b".into(),
        }
    }
    fn reference(&self, inputs: &[&Tensor], output: Shape) -> Tensor {
        let data = inputs[0]
            .data
            .iter()
            .zip(&inputs[1].data)
            .map(|(a, b)| {
                let s = a + b;
                self.activation.map_or(s, |act| act.apply(s))
            })
            .collect();
        Tensor::from_vec(output, data)
    }
}
