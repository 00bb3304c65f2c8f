# NixOS module for `sendan-agent node`: runs the service instances the Sendan scheduler places on this node —
# fetches each one's package from the cluster's caches (signatures checked), starts it as a transient systemd unit
# with its ports and environment, health-checks it, restarts it by its policy, stops what moved away, reports
# transitions and heartbeats the leader.
#
#   services.sendan.node-agent = {
#     enable = true;
#     settings.server = "http://10.20.1.11:7770";
#     settings.advertise = "10.20.1.21";                  # where this node's instances are published
#     tokenFile = "/var/lib/sendan-secrets/node-token";   # from `sendan node token <node>`
#   };
#
# `settings` is the agent's config file (the keys are the `sendan-agent node` flags, kebab-case); it is rendered
# to JSON and passed as `sendan-agent node --config <file>`. The token never enters the Nix store: it is handed to
# the unit with systemd's LoadCredential. Instances run in transient units of their own (`systemd-run`), and
# `KillMode = "process"` stops only the agent: a restarted agent adopts the instances it finds still running.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.sendan.node-agent;
  format = pkgs.formats.json { };

  unit = "sendan-node-agent";
  credential = name: "/run/credentials/${unit}.service/${name}";

  settings = cfg.settings // lib.optionalAttrs (cfg.tokenFile != null) { token-file = credential "token"; };

  configFile = format.generate "sendan-node-agent.json" settings;
in
{
  options.services.sendan.node-agent = {
    enable = lib.mkEnableOption "the Sendan node-agent, which runs the service instances the scheduler places here";

    package = lib.mkOption {
      type = lib.types.package;
      description = "The Sendan package; it must provide `bin/sendan-agent`.";
    };

    settings = lib.mkOption {
      description = ''
        The agent's configuration, rendered to JSON and passed as `sendan-agent node --config`. Keys are the
        `sendan-agent node` flags (kebab-case): `server`, `node`, `state-dir`, `advertise`, `port-range`,
        `systemd-run`, `poll-interval-ms`, `stop-grace-secs`, `fetch-timeout-secs`; unknown keys are rejected by the
        agent. Do not put the token here: use `tokenFile`.
      '';
      default = { };
      type = lib.types.submodule {
        freeformType = format.type;
        options = {
          server = lib.mkOption {
            type = lib.types.str;
            example = "http://10.20.1.11:7770";
            description = "Any Sendan member's API address.";
          };
          node = lib.mkOption {
            type = lib.types.str;
            default = config.networking.hostName;
            defaultText = lib.literalExpression "config.networking.hostName";
            description = "This node's id in the cluster spec.";
          };
          state-dir = lib.mkOption {
            type = lib.types.str;
            default = "/var/lib/sendan-agent-node";
            description = "Where the agent records what it runs and the instances' logs; must be below /var/lib (it is the unit's StateDirectory).";
          };
          systemd-run = lib.mkOption {
            type = lib.types.enum [
              "auto"
              "always"
              "never"
            ];
            default = "always";
            description = "Run instances as transient systemd units (`systemd-run`); `never` supervises them as process groups of the agent.";
          };
        };
      };
    };

    tokenFile = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "/var/lib/sendan-secrets/node-token";
      description = ''
        A file holding this node's token (`sendan node token <node>`). When null the agent reads
        `<state-dir>/token`.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = lib.hasPrefix "/var/lib/" cfg.settings.state-dir;
        message = "services.sendan.node-agent.settings.state-dir must be below /var/lib (it is the unit's StateDirectory)";
      }
    ];

    systemd.services.${unit} = {
      description = "Sendan node-agent: runs the service instances placed on this node";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      restartTriggers = [ configFile ];
      # nix-store and nix fetch packages; systemd-run and systemctl run and watch the instances' units.
      path = [
        config.nix.package
        config.systemd.package
      ];

      serviceConfig = {
        ExecStart = "${lib.getExe' cfg.package "sendan-agent"} node --config ${configFile}";
        Restart = "always";
        RestartSec = "5s";
        # Stop only the agent, never the instances: the restarted agent adopts them.
        KillMode = "process";
        StateDirectory = lib.removePrefix "/var/lib/" cfg.settings.state-dir;
        StateDirectoryMode = "0700";
        LoadCredential = lib.optional (cfg.tokenFile != null) "token:${cfg.tokenFile}";
        UMask = "0077";
      };
    };
  };
}
