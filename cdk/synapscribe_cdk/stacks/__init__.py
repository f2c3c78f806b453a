"""One stack per component: data, network, api, identity, compute."""
