# Sourced by scripts/e2e/cluster.sh. make_certs DIR: a throwaway CA and one certificate per
# component, made with openssl, so every component authenticates as it does in a kubeadm cluster
# (x509 client certs; the Node authorizer sees the kubelet as system:node:$NODE_NAME).

# cert NAME SUBJECT [SAN]: DIR/NAME.{key,crt} signed by DIR/ca.
_cert() {
  local d="$1" name="$2" subj="$3" san="${4:-}" ext="$1/$2.ext"
  openssl genrsa -out "$d/$name.key" 2048 2>/dev/null
  openssl req -new -key "$d/$name.key" -subj "$subj" -out "$d/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$san" ]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$san"
    else echo "extendedKeyUsage=clientAuth"; fi
  } >"$ext"
  openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -sha256 -extfile "$ext" -out "$d/$name.crt" 2>/dev/null
  rm -f "$d/$name.csr" "$ext"
}

make_certs() {
  local d="$1" node="$2"
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/ca.key" -out "$d/ca.crt" -days 2 \
    -subj "/CN=tscsi-e2e-ca" 2>/dev/null
  _cert "$d" apiserver "/CN=kube-apiserver" "IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.0.0.1"
  _cert "$d" apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  _cert "$d" admin "/O=system:masters/CN=tscsi-e2e-admin"
  _cert "$d" controller-manager "/CN=system:kube-controller-manager"
  _cert "$d" scheduler "/CN=system:kube-scheduler"
  _cert "$d" kubelet-client "/O=system:nodes/CN=system:node:$node"
  _cert "$d" kubelet "/CN=$node" "IP:127.0.0.1,DNS:$node,DNS:localhost"
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  chmod 600 "$d"/*.key
}

# kubeconfig FILE SERVER CA [CERT KEY | TOKEN]: a kubeconfig for one identity.
kubeconfig() {
  local file="$1" server="$2" ca="$3" user
  if [ "$#" = 5 ]; then user="    client-certificate: $4
    client-key: $5"
  else user="    token: $4"; fi
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: { server: "$server", certificate-authority: "$ca" }
users:
- name: e2e
  user:
$user
contexts:
- name: e2e
  context: { cluster: e2e, user: e2e }
current-context: e2e
EOF
  chmod 600 "$file"
}
