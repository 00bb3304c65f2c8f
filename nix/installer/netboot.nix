# The Sendan installer as a NixOS netboot image: nixpkgs' netboot module (a kernel and an initrd holding the whole
# system, squashed), booted by the iPXE script `sendan server` answers, running `sendan-agent install` as a service.
#
#   nix build .#installer-netboot          # result/{bzImage,initrd,cmdline}
#   sendan server --boot-dir ./boot --installer-kernel installer/bzImage --installer-initrd installer/initrd \
#     --installer-cmdline "$(cat result/cmdline)"   # after copying result/* to ./boot/installer/
#
# The service reads `sendan.server=`, `sendan.token=` and `sendan.mode=` from the kernel command line (the netboot
# script puts the first two there; the mode defaults to `plan`, which installs nothing — pass `sendan.mode=install`
# in --installer-cmdline when the machines may be wiped). It phones home, waits for enrollment, checks the plan
# against the disks, runs disko and nixos-install, and powers the machine off after a successful install, so its
# next boot (the netboot script answers "boot the local disk" for an installed node) comes up as the node.
#
# Options:
#   sendan.installer.caFile    the cluster CA (PEM) an https:// server must chain to, baked into the image and
#                              copied onto the installed node for its agents;
#   sendan.installer.package   the Sendan package (the flake sets it);
#   sendan.installer.afterInstall  "poweroff" (default), "reboot" or "none".
{
  config,
  lib,
  pkgs,
  modulesPath,
  ...
}:
let
  cfg = config.sendan.installer;
in
{
  imports = [ "${modulesPath}/installer/netboot/netboot-minimal.nix" ];

  options.sendan.installer = {
    package = lib.mkOption {
      type = lib.types.package;
      description = "The Sendan package whose `sendan-agent` runs the install.";
    };
    caFile = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      description = "PEM certificates an https:// Sendan server's certificate must chain to (the cluster CA).";
    };
    afterInstall = lib.mkOption {
      type = lib.types.enum [
        "poweroff"
        "reboot"
        "none"
      ];
      default = "poweroff";
      description = "What the machine does after a successful install.";
    };
  };

  config = {
    system.stateVersion = lib.mkDefault "25.05";
    # What the install runs: disko partitions and mounts, nixos-install installs the node's closure, ssh-keygen
    # makes its host key; lldpd reports the switch port of each NIC.
    environment.systemPackages = [
      cfg.package
      pkgs.disko
      pkgs.nixos-install-tools
      pkgs.openssh
      pkgs.lldpd
    ];
    services.lldpd.enable = true;
    # For an operator to look in while a machine installs (keys only; the installer has no passwords).
    services.openssh = {
      enable = true;
      settings.PasswordAuthentication = false;
    };
    networking.useDHCP = lib.mkDefault true;
    nix.settings.experimental-features = [
      "nix-command"
      "flakes"
    ];
    environment.etc."sendan/ca.pem" = lib.mkIf (cfg.caFile != null) { source = cfg.caFile; };

    systemd.services.sendan-installer = {
      description = "Sendan installer: phone home, then install the node this machine is enrolled as";
      wantedBy = [ "multi-user.target" ];
      after = [
        "network-online.target"
        "lldpd.service"
      ];
      wants = [ "network-online.target" ];
      path = [
        cfg.package
        pkgs.disko
        pkgs.nixos-install-tools
        pkgs.openssh
        pkgs.lldpd
        config.nix.package
        pkgs.util-linux
        pkgs.coreutils
      ];
      serviceConfig = {
        Type = "oneshot";
        StandardOutput = "journal+console";
        StandardError = "journal+console";
      };
      script = ''
        sendan-agent install ${lib.optionalString (cfg.caFile != null) "--ca-file /etc/sendan/ca.pem"}
      '';
      postStop = lib.mkIf (cfg.afterInstall != "none") ''
        if [ "$SERVICE_RESULT" = success ] && grep -q 'sendan.mode=install' /proc/cmdline; then
          systemctl ${cfg.afterInstall} --no-block
        fi
      '';
    };
  };
}
