//! Combining Shamir shares of the data key, as SOPS's `shamir` package (HashiCorp Vault's
//! scheme over GF(2^8)): each share is the y bytes followed by one x-coordinate byte.

/// Multiplication in GF(2^8) with the AES polynomial.
fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut r = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            r ^= a;
        }
        let hi = a & 0x80;
        a <<= 1;
        if hi != 0 {
            a ^= 0x1b;
        }
        b >>= 1;
    }
    r
}

fn inv(a: u8) -> u8 {
    // a^254 = a^-1 in GF(2^8).
    let mut r = 1u8;
    for _ in 0..254 {
        r = mul(r, a);
    }
    r
}

/// Recovers the secret from the shares by Lagrange interpolation at x = 0.
pub(crate) fn combine(parts: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    if parts.len() < 2 {
        return Err("less than two parts cannot be used to reconstruct the secret".into());
    }
    let len = parts[0].len();
    if len < 2 || parts.iter().any(|p| p.len() != len) {
        return Err("all parts must be the same length and at least two bytes".into());
    }
    let xs: Vec<u8> = parts.iter().map(|p| p[len - 1]).collect();
    for (i, x) in xs.iter().enumerate() {
        if xs[..i].contains(x) {
            return Err("duplicate part detected".into());
        }
    }
    let mut secret = vec![0u8; len - 1];
    for (idx, out) in secret.iter_mut().enumerate() {
        let mut acc = 0u8;
        for (i, p) in parts.iter().enumerate() {
            let mut basis = 1u8;
            for (j, xj) in xs.iter().enumerate() {
                if i != j {
                    basis = mul(basis, mul(*xj, inv(xs[i] ^ xj)));
                }
            }
            acc ^= mul(p[idx], basis);
        }
        *out = acc;
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combines_a_linear_split() {
        // f(x) = 42 + 7x (one byte): shares at x = 1, 2, 3.
        let share = |x: u8| vec![42 ^ mul(7, x), x];
        assert_eq!(combine(&[share(1), share(2)]).unwrap(), vec![42]);
        assert_eq!(combine(&[share(3), share(1)]).unwrap(), vec![42]);
        assert_eq!(combine(&[share(1), share(2), share(3)]).unwrap(), vec![42]);
    }
}
