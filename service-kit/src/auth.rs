//! The bearer-token check on the product services: `authorization: Bearer
//! <token>` must carry one of the configured tokens, compared in constant time.

use std::sync::Arc;
use subtle::ConstantTimeEq;
use tonic::{Request, Status};

/// A tonic interceptor; with no tokens configured it lets every call through.
#[derive(Clone)]
pub struct BearerAuth {
    tokens: Arc<Vec<Vec<u8>>>,
}

impl BearerAuth {
    pub fn new(tokens: &[String]) -> Self {
        Self {
            tokens: Arc::new(tokens.iter().map(|t| t.as_bytes().to_vec()).collect()),
        }
    }

    /// True when no token is configured and every call is let through.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    fn accepts(&self, presented: &[u8]) -> bool {
        // Check every token so timing does not reveal which one matched.
        self.tokens.iter().fold(false, |ok, t| {
            ok | bool::from(t.as_slice().ct_eq(presented))
        })
    }
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if self.is_open() {
            return Ok(request);
        }
        let Some(header) = request.metadata().get("authorization") else {
            return Err(Status::unauthenticated(
                "missing authorization header; send `authorization: Bearer <token>`",
            ));
        };
        let header = header
            .to_str()
            .map_err(|_| Status::unauthenticated("authorization header is not ASCII"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("authorization header must be `Bearer <token>`")
            })?;
        if self.accepts(token.trim().as_bytes()) {
            Ok(request)
        } else {
            Err(Status::unauthenticated("invalid bearer token"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    fn request(header: Option<&str>) -> Request<()> {
        let mut r = Request::new(());
        if let Some(h) = header {
            r.metadata_mut()
                .insert("authorization", h.parse().expect("valid header"));
        }
        r
    }

    #[test]
    fn checks_tokens() {
        let mut auth = BearerAuth::new(&["s3cret".into(), "other".into()]);
        assert!(auth.call(request(Some("Bearer s3cret"))).is_ok());
        assert!(auth.call(request(Some("Bearer other"))).is_ok());
        for bad in [
            None,
            Some("Bearer wrong"),
            Some("s3cret"),
            Some("Basic s3cret"),
            Some("Bearer "),
        ] {
            let err = auth.call(request(bad)).expect_err("must be refused");
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{bad:?}");
        }
    }

    #[test]
    fn open_without_tokens() {
        let mut auth = BearerAuth::new(&[]);
        assert!(auth.call(request(None)).is_ok());
    }
}
