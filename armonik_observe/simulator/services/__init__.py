"""gRPC servicers of the simulated control plane, built on the official servicer base classes."""
