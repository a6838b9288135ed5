//! A server on a loopback port, and clients of it.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;

use count_core::Counter;
use count_grpc::ServerConfig;
use count_grpc::proto::count::v1 as pb;
use count_grpc::proto::count::v1::count_service_client::CountServiceClient;
use count_grpc::proto::google::r#type::Date;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// A server in this process, stopped by [`Running::stop`].
pub struct Running {
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<count_core::Result<()>>,
}

impl Running {
    pub async fn start(config: ServerConfig, counter: Arc<dyn Counter>) -> Running {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(count_grpc::server::serve_counter(
            config,
            counter,
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        Running {
            address,
            stop: Some(stop),
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub async fn client(&self) -> CountServiceClient<Channel> {
        CountServiceClient::connect(self.url()).await.unwrap()
    }

    /// Asks the server to stop; returns once it has (queue flushed).
    pub async fn stop(mut self) -> count_core::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap()
    }
}

pub fn date(year: i32, month: i32, day: i32) -> Date {
    Date { year, month, day }
}

pub fn add(method: i32, path: &str, seconds: i64) -> pb::AddRequest {
    pb::AddRequest {
        method,
        path: path.to_owned(),
        request_timestamp: Some(prost_types::Timestamp { seconds, nanos: 0 }),
    }
}

/// 2024-03-10T12:00:00Z.
pub const NOON: i64 = 1_710_072_000;
