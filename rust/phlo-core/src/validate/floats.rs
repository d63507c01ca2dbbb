//! Floats as Pandera compares them. Arrow's comparison kernels and row encoding order floats
//! by their bits (IEEE total order), so -0.0 sorts below 0.0 and NaNs with other payloads or
//! signs differ; pandas and polars treat -0.0 as 0.0 and every NaN as one value.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type};
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType, PrimitiveArray};
use arrow_schema::DataType;

/// `array` with -0.0 as 0.0 and one NaN (or NaN as null, for pandas, where both are missing);
/// the array itself when nothing changes, so checks only pay for a scan.
pub fn canonical(array: &ArrayRef, nan_is_null: bool) -> ArrayRef {
    let changed = match array.data_type() {
        DataType::Float64 => canonical_of(array.as_primitive::<Float64Type>(), nan_is_null),
        DataType::Float32 => canonical_of(array.as_primitive::<Float32Type>(), nan_is_null),
        _ => None,
    };
    changed.unwrap_or_else(|| array.clone())
}

trait Float: Copy {
    fn canonical(self) -> Self;
    fn is_canonical(self) -> bool;
    fn is_nan(self) -> bool;
}

macro_rules! float {
    ($t:ty) => {
        impl Float for $t {
            fn canonical(self) -> Self {
                match self {
                    v if v == 0.0 => 0.0,
                    v if v.is_nan() => <$t>::NAN,
                    v => v,
                }
            }
            fn is_canonical(self) -> bool {
                self.to_bits() == self.canonical().to_bits()
            }
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
        }
    };
}
float!(f32);
float!(f64);

fn canonical_of<T>(array: &PrimitiveArray<T>, nan_is_null: bool) -> Option<ArrayRef>
where
    T: ArrowPrimitiveType,
    T::Native: Float,
{
    let values = array.values();
    let nan_to_null = nan_is_null && values.iter().any(|v| v.is_nan());
    if !nan_to_null && values.iter().all(|v| v.is_canonical()) {
        return None;
    }
    let out: PrimitiveArray<T> = match nan_to_null {
        true => array
            .iter()
            .map(|v| v.filter(|v| !v.is_nan()).map(Float::canonical))
            .collect(),
        false => array.unary(Float::canonical),
    };
    Some(Arc::new(out))
}

#[cfg(test)]
mod tests {
    use arrow_array::Float64Array;

    use super::*;

    #[test]
    fn negative_zero_and_nan_payloads_become_one_value() {
        let odd_nan = f64::from_bits(f64::NAN.to_bits() | 1);
        let array: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(-0.0),
            Some(-f64::NAN),
            Some(odd_nan),
            None,
            Some(1.5),
        ]));
        let bits = |a: &ArrayRef| -> Vec<Option<u64>> {
            let a = a.as_primitive::<Float64Type>();
            a.iter().map(|v| v.map(f64::to_bits)).collect()
        };
        let nan = Some(f64::NAN.to_bits());
        let zero = Some(0f64.to_bits());
        let one = Some(1.5f64.to_bits());
        assert_eq!(
            bits(&canonical(&array, false)),
            vec![zero, nan, nan, None, one]
        );
        assert_eq!(
            bits(&canonical(&array, true)),
            vec![zero, None, None, None, one]
        );
        let plain: ArrayRef = Arc::new(Float64Array::from(vec![0.0, 2.0]));
        assert!(Arc::ptr_eq(&canonical(&plain, true), &plain));
    }
}
