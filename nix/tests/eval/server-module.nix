# WIRING ONLY: nix/modules/server.nix is called with hand-written stand-ins for the few nixpkgs `lib` and `pkgs`
# functions it uses, and with option values given directly (defaults already applied). These tests check how the
# module turns its options into the service (command line, rendered settings, credentials, hardening); they do
# not evaluate NixOS, so option types, defaults and merging are out of their reach.
let
  b = builtins;
  lib = {
    mkOption = option: option;
    mkEnableOption = what: {
      type = "bool";
      default = false;
      description = "Whether to enable ${what}.";
    };
    mkIf = condition: content: { inherit condition content; };
    types = {
      package = "package";
      str = "str";
      bool = "bool";
      ints.positive = "positive int";
      nullOr = t: "null or ${t}";
      submodule = m: { submodule = m; };
    };
    filterAttrs = pred: attrs: b.removeAttrs attrs (b.filter (n: !(pred n attrs.${n})) (b.attrNames attrs));
    optionalAttrs = cond: attrs: if cond then attrs else { };
    optional = cond: x: if cond then [ x ] else [ ];
    mapAttrsToList = f: attrs: map (n: f n attrs.${n}) (b.attrNames attrs);
    hasPrefix = prefix: s: b.substring 0 (b.stringLength prefix) s == prefix;
    removePrefix = prefix: s: b.substring (b.stringLength prefix) (-1) s;
    splitString = sep: s: b.filter b.isString (b.split sep s);
    last = xs: b.elemAt xs (b.length xs - 1);
    toInt = b.fromJSON;
    length = b.length;
    getExe' = pkg: bin: "${pkg}/bin/${bin}";
  };
  pkgs.formats.json = _: {
    type = "json value";
    generate = name: value: {
      outPath = "/nix/store/00000000000000000000000000000000-${name}";
      inherit value;
    };
  };
  settings = {
    node-id = 2;
    listen = "10.20.2.11:7770";
    data-dir = "/var/lib/sendan";
    initial-cluster = "1=10.20.1.11:7770,2=10.20.2.11:7770,3=10.20.1.12:7770";
  };
  server = {
    enable = true;
    package = "/nix/store/11111111111111111111111111111111-sendan-0.1.0";
    inherit settings;
    adminTokenFile = "/var/lib/sendan-secrets/admin-token";
    clusterSecretFile = "/var/lib/sendan-secrets/cluster-secret";
    tlsCertFile = null;
    tlsKeyFile = null;
    tlsCaFile = null;
    openFirewall = true;
  };
  evaluate =
    cfg:
    import ../../modules/server.nix {
      inherit lib pkgs;
      config.services.sendan.server = cfg;
    };
  module = evaluate server;
  unit = module.config.content.systemd.services.sendan-server;
in
{
  options = {
    expr = {
      top = b.attrNames module.options.services.sendan.server;
      settings = b.attrNames module.options.services.sendan.server.settings.type.submodule.options;
      freeform = module.options.services.sendan.server.settings.type.submodule.freeformType;
    };
    expected = {
      top = [ "adminTokenFile" "clusterSecretFile" "enable" "openFirewall" "package" "settings" "tlsCaFile" "tlsCertFile" "tlsKeyFile" ];
      settings = [ "data-dir" "initial-cluster" "listen" "node-id" ];
      freeform = "json value";
    };
  };
  onlyWhenEnabled = {
    expr = [ module.config.condition (evaluate (server // { enable = false; })).config.condition ];
    expected = [ true false ];
  };
  commandLine = {
    expr = unit.serviceConfig.ExecStart;
    expected = "/nix/store/11111111111111111111111111111111-sendan-0.1.0/bin/sendan server --config /nix/store/00000000000000000000000000000000-sendan-server.json";
  };
  secretsArePathsToCredentials = {
    expr = {
      rendered = (b.head unit.restartTriggers).value;
      inherit (unit.serviceConfig) LoadCredential;
    };
    expected = {
      rendered = settings // {
        admin-token-file = "/run/credentials/sendan-server.service/admin-token";
        cluster-secret-file = "/run/credentials/sendan-server.service/cluster-secret";
      };
      LoadCredential = [
        "admin-token:/var/lib/sendan-secrets/admin-token"
        "cluster-secret:/var/lib/sendan-secrets/cluster-secret"
      ];
    };
  };
  tlsFilesAreCredentials = {
    expr =
      let
        u = (evaluate (server // {
          tlsCertFile = "/var/lib/sendan-secrets/sendan-2.pem";
          tlsKeyFile = "/var/lib/sendan-secrets/sendan-2-key.pem";
          tlsCaFile = "/var/lib/sendan-secrets/ca.pem";
        })).config.content.systemd.services.sendan-server;
        rendered = (b.head u.restartTriggers).value;
      in
      {
        inherit (rendered) tls-cert-file tls-key-file tls-ca-file;
        credentials = b.filter (c: lib.hasPrefix "tls-" c) u.serviceConfig.LoadCredential;
      };
    expected = {
      tls-cert-file = "/run/credentials/sendan-server.service/tls-cert";
      tls-key-file = "/run/credentials/sendan-server.service/tls-key";
      tls-ca-file = "/run/credentials/sendan-server.service/tls-ca";
      credentials = [
        "tls-ca:/var/lib/sendan-secrets/ca.pem"
        "tls-cert:/var/lib/sendan-secrets/sendan-2.pem"
        "tls-key:/var/lib/sendan-secrets/sendan-2-key.pem"
      ];
    };
  };
  noSecretFilesNoCredentials = {
    expr =
      let
        u = (evaluate (server // { adminTokenFile = null; clusterSecretFile = null; })).config.content.systemd.services.sendan-server;
      in
      {
        rendered = (b.head u.restartTriggers).value;
        inherit (u.serviceConfig) LoadCredential;
      };
    expected = {
      rendered = settings;
      LoadCredential = [ ];
    };
  };
  hardening = {
    expr = {
      inherit (unit.serviceConfig)
        DynamicUser
        StateDirectory
        ProtectSystem
        ProtectHome
        NoNewPrivileges
        PrivateTmp
        PrivateDevices
        CapabilityBoundingSet
        RestrictAddressFamilies
        SystemCallFilter
        SystemCallArchitectures
        MemoryDenyWriteExecute
        UMask
        ;
    };
    expected = {
      DynamicUser = true;
      StateDirectory = "sendan";
      ProtectSystem = "strict";
      ProtectHome = true;
      NoNewPrivileges = true;
      PrivateTmp = true;
      PrivateDevices = true;
      CapabilityBoundingSet = "";
      RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" ];
      SystemCallFilter = [ "@system-service" "~@privileged" "~@resources" ];
      SystemCallArchitectures = "native";
      MemoryDenyWriteExecute = true;
      UMask = "0077";
    };
  };
  firewallAndAssertions = {
    expr = {
      ports = module.config.content.networking.firewall.allowedTCPPorts;
      assertions = map (a: a.assertion) module.config.content.assertions;
      elsewhere = map (a: a.assertion) (evaluate (server // {
        clusterSecretFile = null;
        settings = settings // { data-dir = "/srv/sendan"; };
        tlsKeyFile = "/var/lib/sendan-secrets/key-without-its-certificate.pem";
      })).config.content.assertions;
    };
    expected = {
      ports = [ 7770 ];
      assertions = [ true true true ];
      elsewhere = [ false false false ];
    };
  };
}
