#!/bin/sh
# /scenarios/daemon-lib, sourced by the VM tests' node scenarios
# (handover_guest.sh, shared_nic_guest.sh): installs the tools the host
# drives a guest's nichandoverd with.
#
#   nh-daemon start|kill|stop   nichandoverd --config /etc/nichandover/node.conf
#                               under a supervisor that restarts it a second
#                               after it exits (as systemd's Restart= would),
#                               until `stop`; `kill` is SIGKILL
#   nh-ctl                      one shell command per connection (nc -e): its
#                               output, then "rc=N"
cat >/bin/nh-daemon <<'EOS'
#!/bin/sh
run=/run/nichandover
case $1 in
  start)
    rm -f $run/stopped
    (
      while :; do
        nichandoverd --config /etc/nichandover/node.conf >>/tmp/nichandoverd.log 2>&1 &
        echo $! >$run/pid
        wait $!
        [ -e $run/stopped ] && break
        sleep 1
      done
    ) </dev/null >/dev/null 2>&1 &
    ;;
  kill) kill -9 "$(cat $run/pid)" ;;
  stop)
    touch $run/stopped
    pid=$(cat $run/pid)
    kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do usleep 100000; done
    ;;
  *) echo "usage: nh-daemon start|kill|stop"; exit 2 ;;
esac
EOS
cat >/bin/nh-ctl <<'EOS'
#!/bin/sh
read -r cmd
sh -c "$cmd" 2>&1
echo "rc=$?"
EOS
chmod 0755 /bin/nh-daemon /bin/nh-ctl
