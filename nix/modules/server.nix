# NixOS module for `sendan server`: one member of the replicated event log and API.
#
#   services.sendan.server = {
#     enable = true;
#     settings = { node-id = 1; listen = "10.20.1.11:7770"; initial-cluster = "1=10.20.1.11:7770,2=..."; };
#     clusterSecretFile = "/var/lib/sendan-secrets/cluster-secret";
#   };
#
# `settings` is the server's config file (the keys are the `sendan server` flags, kebab-case); it is rendered to
# JSON and passed as `sendan server --config <file>`. Secrets never enter the Nix store: they are given as paths
# (`*File` options: the admin token, the cluster secret, the TLS certificate, key and CA), handed to the service
# with systemd's LoadCredential, and the rendered config points at the credentials directory.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.sendan.server;
  format = pkgs.formats.json { };

  unit = "sendan-server";
  credential = name: "/run/credentials/${unit}.service/${name}";

  secrets = lib.filterAttrs (_: path: path != null) {
    admin-token = cfg.adminTokenFile;
    cluster-secret = cfg.clusterSecretFile;
    tls-cert = cfg.tlsCertFile;
    tls-key = cfg.tlsKeyFile;
    tls-ca = cfg.tlsCaFile;
  };

  settings =
    cfg.settings
    // lib.optionalAttrs (cfg.adminTokenFile != null) { admin-token-file = credential "admin-token"; }
    // lib.optionalAttrs (cfg.clusterSecretFile != null) { cluster-secret-file = credential "cluster-secret"; }
    // lib.optionalAttrs (cfg.tlsCertFile != null) { tls-cert-file = credential "tls-cert"; }
    // lib.optionalAttrs (cfg.tlsKeyFile != null) { tls-key-file = credential "tls-key"; }
    // lib.optionalAttrs (cfg.tlsCaFile != null) { tls-ca-file = credential "tls-ca"; };

  configFile = format.generate "sendan-server.json" settings;

  listenPort = lib.toInt (lib.last (lib.splitString ":" cfg.settings.listen));
in
{
  options.services.sendan.server = {
    enable = lib.mkEnableOption "the Sendan server, a member of the cluster's replicated event log and API";

    package = lib.mkOption {
      type = lib.types.package;
      description = "The Sendan package; it must provide `bin/sendan`.";
    };

    settings = lib.mkOption {
      description = ''
        The server's configuration, rendered to JSON and passed as `sendan server --config`. Keys are the
        `sendan server` flags (kebab-case); unknown keys are rejected by the server. Do not put secrets here: use
        `adminTokenFile` and `clusterSecretFile`.
      '';
      default = { };
      type = lib.types.submodule {
        freeformType = format.type;
        options = {
          node-id = lib.mkOption {
            type = lib.types.ints.positive;
            description = "This member's Raft id; its entry in `initial-cluster`.";
          };
          listen = lib.mkOption {
            type = lib.types.str;
            default = "127.0.0.1:7770";
            example = "10.20.1.11:7770";
            description = "The `IP:port` the API and peer traffic listen on.";
          };
          data-dir = lib.mkOption {
            type = lib.types.str;
            default = "/var/lib/sendan";
            description = "Where the log, snapshots and state live; must be below /var/lib (it is the unit's StateDirectory).";
          };
          initial-cluster = lib.mkOption {
            type = lib.types.nullOr lib.types.str;
            default = null;
            example = "1=10.20.1.11:7770,2=10.20.2.11:7770,3=10.20.1.12:7770";
            description = "Every member's id and address; null for a single-member cluster.";
          };
        };
      };
    };

    adminTokenFile = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "/var/lib/sendan-secrets/admin-token";
      description = ''
        A file holding the operator (admin) bearer token. When null the server generates one into its data
        directory on first start.
      '';
    };

    clusterSecretFile = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "/var/lib/sendan-secrets/cluster-secret";
      description = ''
        A file holding the secret every member uses to authenticate peer (Raft) traffic; required when
        `initial-cluster` names more than one member.
      '';
    };

    tlsCertFile = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "/var/lib/sendan-secrets/sendan-1.pem";
      description = ''
        The PEM certificate chain to serve HTTPS with, to clients and to the other members (`sendan tls issue`
        makes one). Every member of a cluster serves TLS, or none does. Needs `tlsKeyFile`.
      '';
    };

    tlsKeyFile = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "/var/lib/sendan-secrets/sendan-1-key.pem";
      description = "The PEM private key of `tlsCertFile`.";
    };

    tlsCaFile = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "/var/lib/sendan-secrets/ca.pem";
      description = "PEM certificates the other members' certificates must chain to (the cluster's CA).";
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Open the `listen` port in the firewall.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = lib.hasPrefix "/var/lib/" cfg.settings.data-dir;
        message = "services.sendan.server.settings.data-dir must be below /var/lib (it is the unit's StateDirectory)";
      }
      {
        assertion =
          cfg.settings.initial-cluster == null
          || lib.length (lib.splitString "," cfg.settings.initial-cluster) == 1
          || cfg.clusterSecretFile != null;
        message = "services.sendan.server.clusterSecretFile is required when initial-cluster names several members";
      }
      {
        assertion = (cfg.tlsCertFile == null) == (cfg.tlsKeyFile == null) && (cfg.tlsCaFile == null || cfg.tlsCertFile != null);
        message = "services.sendan.server.tlsCertFile and tlsKeyFile go together, and tlsCaFile needs them";
      }
    ];

    networking.firewall.allowedTCPPorts = lib.optional cfg.openFirewall listenPort;

    systemd.services.${unit} = {
      description = "Sendan server";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      restartTriggers = [ configFile ];

      serviceConfig = {
        ExecStart = "${lib.getExe' cfg.package "sendan"} server --config ${configFile}";
        Restart = "on-failure";
        RestartSec = "5s";
        LimitNOFILE = 65536;

        DynamicUser = true;
        StateDirectory = lib.removePrefix "/var/lib/" cfg.settings.data-dir;
        StateDirectoryMode = "0700";
        LoadCredential = lib.mapAttrsToList (name: path: "${name}:${path}") secrets;
        UMask = "0077";

        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        PrivateUsers = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectKernelLogs = true;
        ProtectKernelModules = true;
        ProtectKernelTunables = true;
        ProtectControlGroups = true;
        ProtectProc = "invisible";
        ProcSubset = "pid";
        RestrictAddressFamilies = [
          "AF_INET"
          "AF_INET6"
          "AF_UNIX"
        ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        RemoveIPC = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [
          "@system-service"
          "~@privileged"
          "~@resources"
        ];
        SystemCallErrorNumber = "EPERM";
      };
    };
  };
}
