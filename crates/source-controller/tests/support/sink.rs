//! An HTTP sink on 127.0.0.1 that records the JSON bodies POSTed to it (a stand-in for
//! notification-controller's event server, answering 202 like it does).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub struct Sink {
    pub url: String,
    pub received: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    pub async fn start() -> Sink {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        let received: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
        let rec = Arc::clone(&received);
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else {
                    continue;
                };
                let rec = Arc::clone(&rec);
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let rec = Arc::clone(&rec);
                        async move {
                            let ct = req
                                .headers()
                                .get("content-type")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string();
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let v: serde_json::Value =
                                serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                            rec.lock().unwrap().push((ct, v));
                            let mut r = Response::new(Full::new(Bytes::new()));
                            *r.status_mut() = StatusCode::ACCEPTED;
                            Ok::<_, Infallible>(r)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        Sink {
            url,
            received,
            task,
        }
    }
}
