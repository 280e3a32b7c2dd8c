# OpenBao (Vault's API) for the compose stack: integrated (raft) storage in the `vault-data`
# volume, HTTP on the stack's private network and on :8200 of the host.
# Put TLS here (tls_cert_file, tls_key_file) before exposing :8200 beyond the machine, and use
# auto-unseal (a `seal` stanza: a cloud KMS or another Vault's transit engine) to start
# without a person unsealing it (docs/production.md).
ui            = true
disable_mlock = true

storage "raft" {
  path    = "/openbao/file"
  node_id = "r2c-vault-1"
}

listener "tcp" {
  address     = "0.0.0.0:8200"
  tls_disable = true
}

api_addr     = "http://vault:8200"
cluster_addr = "http://vault:8201"
